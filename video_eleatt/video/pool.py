"""Decode videos in worker processes, with a per-video wall-clock timeout that really stops.

A decoder can spin forever inside native code, holding the GIL, on some damaged files (decord
did on headers that over-report frames): no signal or thread in that process can stop it. So
each video is decoded in a worker process, and the parent kills (SIGKILL) a worker that overruns
its video's timeout, starts a replacement and reports the video as failed. A worker that crashes
(segfault) is also replaced and its video reported failed. The job carries on either way.

How it works:

- ``num_workers`` worker processes, started with ``multiprocessing``'s "forkserver" method by
  default: the fork server imports torch and PyAV once (preloaded), and every worker,
  including replacements, is forked from it in milliseconds, with no open container or CUDA
  state inherited from the parent. Each worker opens one video at a time with its own
  :class:`~video_eleatt.video.decode.VideoReader`, samples the frame indices, decodes them in
  sorted chunks of ``chunk_size`` frames, applies the optional ``transform`` and sends each
  chunk through a pipe (the raw tensor bytes, no pickled tensors, no shared-memory handles that
  a hung worker would have to serve).
- A monitor thread in the parent hands out tasks, reads the pipes, enforces the timeouts and
  queues events for :meth:`DecodePool.imap`. At most ``max_chunks_per_worker`` chunks per worker
  wait in the parent; past that the monitor stops reading that worker, whose next send then
  blocks. Memory is therefore bounded by ``num_workers * (max_chunks_per_worker + 2)`` chunks,
  whatever the length of the videos.
- The timeout clock of a video stops while its worker is held back by that limit (the consumer
  is slow, not the decoder), so a slow consumer never makes a healthy video time out.

Events, per video, in this order::

    VideoStarted(key, info, frame_indices, timestamps)
    FrameChunk(key, start, frames)          # zero or more, start = position in frame_indices
    VideoFinished(key)                      # or, at any point after the first event:
    VideoFailed(key, reason)                # (also as the only event of a video)

A second ``VideoStarted`` for a video replaces the first: the worker found the container's frame
table wrong, or met damage it did not know, after some chunks were sent, and decodes the
video again from a table the decoder itself produced (which lists the clean frames and the
lost ones). Consumers drop the chunks they got
before it.

Several videos are in flight at once, so events of different videos interleave; within one
video the order above holds, and its chunks arrive in order and cover ``frame_indices``
exactly once. A video may fail after some of its chunks were delivered: consumers keep a
video's chunks until its ``VideoFinished`` and drop them on ``VideoFailed``.

Scripts that create a pool must guard their entry point with ``if __name__ == "__main__":``
(as with any multiprocessing start method but "fork").
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import queue
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

import numpy as np
import torch

from video_eleatt.video.decode import (
    MAX_LOST_FRACTION,
    FrameTableMismatch,
    VideoDecodeError,
    VideoInfo,
    VideoReader,
)
from video_eleatt.video.sampling import SamplingConfig, sample_frame_indices

Transform = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------- events
@dataclass
class DecodeTask:
    """One video to decode.

    Attributes:
        key: the caller's name for the video (e.g. its path relative to the dataset root);
            every event about the video carries it.
        path: the file to open.
        sampling: which frames to decode.
        frame_picker: optional picklable callable ``(info, timestamps) -> frame indices`` that
            replaces ``sampling`` (e.g. a few chosen frames for a preview); its indices are
            clamped to the decodable range and sorted.
    """

    key: str
    path: str
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(mode="all"))
    frame_picker: Callable[[VideoInfo, np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class VideoStarted:
    """A video opened; its frames follow as :class:`FrameChunk` events.

    Attributes:
        key: the task's key.
        info: what the container says (frame count, fps, duration, decoded size).
        frame_indices: int64 (K,) sorted source frame indices that will be delivered.
        timestamps: float64 (K,) start times of those frames in seconds.
    """

    key: str
    info: VideoInfo
    frame_indices: np.ndarray
    timestamps: np.ndarray


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive frames of a video.

    Attributes:
        key: the task's key.
        start: position of the first frame in the video's ``frame_indices``.
        frames: uint8 (n, H, W, 3) RGB frames, or whatever ``transform`` made of them
            (e.g. float (n, C, h, w)).
    """

    key: str
    start: int
    frames: torch.Tensor


@dataclass(frozen=True)
class VideoFinished:
    """Every frame of the video was delivered."""

    key: str


@dataclass(frozen=True)
class VideoFailed:
    """The video could not be decoded (or timed out, or its worker crashed).

    Attributes:
        key: the task's key.
        reason: one line saying what went wrong, naming the file.
    """

    key: str
    reason: str


DecodeEvent = VideoStarted | FrameChunk | VideoFinished | VideoFailed


# ---------------------------------------------------------------------------------- worker
def _die_with_parent(kernel_signal: bool) -> None:
    """Make sure this worker does not outlive the process that started it.

    With ``kernel_signal``, Linux SIGKILLs the worker when its parent thread ends (works even
    while decord holds the GIL). That is right when the parent is the fork server or the main
    thread; a worker forked by the pool's monitor thread (start method "fork") would be killed
    when that thread ends, so it watches its parent's pid from a thread instead.
    """
    parent = os.getppid()
    if kernel_signal:
        with contextlib.suppress(Exception):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    else:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(0)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the watch took effect
        os._exit(0)


def _release_freed_memory() -> None:
    """Give freed heap memory back to the OS (glibc keeps it otherwise, so a worker's resident
    memory creeps up over many videos even though nothing is kept)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _one_malloc_arena() -> None:
    """Make every thread allocate from one glibc arena.

    decord decodes in its own thread and the worker frees the frames in the main thread; with
    per-thread arenas the freed memory was not reused and a worker grew by up to ~130 MB over
    a 6000-frame 128x128 video (measured); with one arena the growth stays under ~30 MB.
    """
    with contextlib.suppress(Exception):
        m_arena_max = -8
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, 1)


def _send_frames(conn: Connection, key: str, start: int, frames: torch.Tensor) -> None:
    frames = frames.detach().cpu().contiguous()
    raw = frames.view(torch.uint8).reshape(-1).numpy() if frames.numel() else np.empty(0, np.uint8)
    conn.send(("chunk", key, start, str(frames.dtype).removeprefix("torch."), tuple(frames.shape)))
    conn.send_bytes(raw)


def _decode_one(
    conn: Connection,
    reader: VideoReader,
    task: DecodeTask,
    transform: Transform | None,
    chunk_size: int,
) -> None:
    """Sample one video's frames, decode them and send the started message and the chunks."""
    timestamps = reader.frame_timestamps()
    info = reader.info
    if task.frame_picker is not None:
        frame_indices = np.sort(reader.clamp(task.frame_picker(info, timestamps)))
    else:
        frame_indices = sample_frame_indices(info.num_frames, info.fps, task.sampling, timestamps)
    conn.send(("started", task.key, info, frame_indices, timestamps[frame_indices]))
    start = 0
    for chunk_indices, frames in reader.iter_frames(frame_indices, chunk_size):
        if transform is not None:
            try:
                frames = transform(frames)
            except Exception as err:
                raise RuntimeError(
                    f"transform {transform!r} failed on frames {chunk_indices.tolist()} "
                    f"of {task.path}: {type(err).__name__}: {err}"
                ) from err
        _send_frames(conn, task.key, start, frames)
        start += len(chunk_indices)


def _worker_main(
    conn: Connection,
    transform: Transform | None,
    chunk_size: int,
    decode_size: tuple[int, int] | None,
    num_threads: int,
    damage: dict,
    kernel_parent_signal: bool,
) -> None:
    """Worker process: decode the videos the parent sends, one at a time, until None."""
    # Objects this process inherited by forking are the parent's: an FFmpeg decoder context
    # among them (one the parent has not garbage-collected yet) owns threads that do not
    # exist here, and freeing it here waits for them forever or crashes. The collector leaves
    # inherited objects alone from now on; this worker's own are collected as usual.
    gc.freeze()
    _die_with_parent(kernel_parent_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _one_malloc_arena()
    torch.set_num_threads(1)
    width, height = decode_size if decode_size is not None else (-1, -1)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task: DecodeTask = message
        key, path = task.key, task.path
        try:
            index = "auto"
            while True:
                reader = VideoReader(
                    path,
                    width=width,
                    height=height,
                    num_threads=num_threads,
                    index=index,
                    **damage,
                )
                try:
                    _decode_one(conn, reader, task, transform, chunk_size)
                    break
                except FrameTableMismatch:
                    if index == "decode":
                        raise
                # again from a decode pass (the frames the decoder really outputs); the new
                # VideoStarted tells the consumer to drop this video's chunks so far
                index = "decode"
                del reader
            del reader
            _release_freed_memory()
            conn.send(("finished", key))
        except (BrokenPipeError, EOFError):
            return
        except VideoDecodeError as err:
            conn.send(("failed", key, str(err)))
        except Exception as err:
            conn.send(("failed", key, f"{type(err).__name__} while decoding {path}: {err}"))


# ---------------------------------------------------------------------------------- parent
@dataclass
class _Slot:
    """A worker process and the video it is decoding."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: DecodeTask | None = None
    started_at: float = 0.0
    paused_seconds: float = 0.0
    paused_since: float | None = None

    def elapsed(self, now: float) -> float:
        """Seconds spent on the current video, not counting time held back by the consumer."""
        held = now - self.paused_since if self.paused_since is not None else 0.0
        paused = self.paused_seconds + held
        return now - self.started_at - paused


_DONE = object()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "an unknown cause"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class DecodePool:
    """Worker processes that decode videos, with a per-video wall-clock timeout.

    Args:
        num_workers: worker processes (videos decoded at once), >= 1.
        timeout_s: seconds one video may take in its worker (open, sample, decode, transform;
            not time spent waiting for the consumer). A worker past it is killed and replaced.
        transform: optional picklable callable run in the worker on every chunk, uint8
            (n, H, W, 3) -> Tensor (e.g. float (n, C, h, w)); its module is preloaded.
        chunk_size: frames per decoded chunk and per :class:`FrameChunk`.
        decode_size: (width, height) to resize the decoded (upright) frames to; None keeps the
            source size. -1 in either keeps that side's aspect ratio.
        num_threads: decoder threads per worker.
        max_chunks_per_worker: chunks each worker may have waiting in the parent
            (:attr:`peak_chunks_waiting` reports the most there were at once, all workers).
        start_method: multiprocessing start method: "forkserver" (default; safe with torch and
            CUDA in the parent), "spawn" (slow: each worker imports torch) or "fork".
        on_damage: "keep" (a damaged video is its clean frames, the losses recorded in
            :attr:`VideoInfo.lost_frames` and friends) or "fail" (the first loss fails it).
        max_lost_fraction: a video that loses more than this share of its frames fails.

    >>> tasks = [DecodeTask("a.mp4", "/data/a.mp4", SamplingConfig(mode="fps", fps=2.0))]
    >>> with DecodePool(num_workers=2, timeout_s=60) as pool:  # doctest: +SKIP
    ...     for event in pool.imap(tasks):
    ...         print(type(event).__name__, event.key)
    VideoStarted a.mp4
    FrameChunk a.mp4
    VideoFinished a.mp4
    """

    def __init__(
        self,
        num_workers: int,
        timeout_s: float,
        transform: Transform | None = None,
        chunk_size: int = 32,
        decode_size: tuple[int, int] | None = None,
        num_threads: int = 1,
        max_chunks_per_worker: int = 2,
        start_method: str = "forkserver",
        on_damage: str = "keep",
        max_lost_fraction: float = MAX_LOST_FRACTION,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s}")
        if chunk_size < 1 or max_chunks_per_worker < 1:
            raise ValueError(
                f"chunk_size and max_chunks_per_worker must be >= 1, got {chunk_size} and "
                f"{max_chunks_per_worker}"
            )
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start method {start_method!r} is not available here; choose one of "
                f"{multiprocessing.get_all_start_methods()}"
            )
        self.num_workers = num_workers
        self.timeout_s = float(timeout_s)
        self.transform = transform
        self.chunk_size = chunk_size
        self.decode_size = tuple(decode_size) if decode_size is not None else None
        self.num_threads = num_threads
        self.max_chunks_per_worker = max_chunks_per_worker
        self.damage = {"on_damage": on_damage, "max_lost_fraction": max_lost_fraction}
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            preload = ["torch", "av", __name__]
            module = getattr(transform, "__module__", None) or type(transform).__module__
            if transform is not None and module not in ("__main__", "builtins"):
                preload.append(module)
            # takes effect only if the (process-wide) fork server is not running yet
            self._context.set_forkserver_preload(preload)
        self._slots: list[_Slot] = []
        # chunks each worker position has in the event queue, not yet taken by the consumer;
        # counted per position (not per video or process) so the bound holds across both
        self._waiting = [0] * num_workers
        self._lock = threading.Lock()  # guards _waiting (monitor thread and consumer)
        # the most chunks held in the parent at once during the last imap, all workers together:
        # what the memory bound rests on, kept so tests and benchmarks can check it
        self.peak_chunks_waiting = 0
        # the consumer wakes the monitor when it takes a chunk; non-blocking so it never waits
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._monitor: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._slots)
        for _ in range(num_workers):
            self._slots.append(self._start_worker())

    # ------------------------------------------------------------------------- lifecycle
    def _start_worker(self) -> _Slot:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(
                child_conn,
                self.transform,
                self.chunk_size,
                self.decode_size,
                self.num_threads,
                self.damage,
                # PR_SET_PDEATHSIG follows the creating thread: not safe from the monitor
                self._context.get_start_method() != "fork"
                or threading.current_thread() is threading.main_thread(),
            ),
            name="video-eleatt-decode",
            daemon=True,
        )
        process.start()
        child_conn.close()  # only the worker holds its end, so its death reads as EOF here
        return _Slot(process=process, conn=parent_conn)

    def _replace(self, index: int) -> None:
        slot = self._slots[index]
        _kill(slot)
        self._slots[index] = self._start_worker()

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers."""
        return [slot.process.pid for slot in self._slots if slot.process.pid is not None]

    def worker_peak_rss(self) -> list[int]:
        """Peak resident memory (bytes, Linux VmHWM) of each current worker; 0 if unknown."""
        peaks = []
        for pid in self.worker_pids():
            peak = 0
            with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) * 1024
            peaks.append(peak)
        return peaks

    def close(self) -> None:
        """Stop the workers (asked to exit, killed if busy or slow) and the monitor thread."""
        if self._closed:
            return
        self._closed = True
        self._stop_monitor()
        for slot in self._slots:  # all idle now: ask them to exit, kill the slow ones
            if slot.process.is_alive():
                with contextlib.suppress(OSError):
                    slot.conn.send(None)
        deadline = time.monotonic() + 2.0
        for slot in self._slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            _kill(slot)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._finalizer.detach()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _stop_monitor(self) -> None:
        if self._monitor is not None:
            self._stop.set()
            self._wake()
            self._monitor.join()
            self._monitor = None
        # a video abandoned half-way leaves its worker busy: kill it (and start a fresh one)
        for index, slot in enumerate(self._slots):
            if slot.task is not None:
                slot.task = None
                _kill(slot)
                if not self._closed:
                    self._slots[index] = self._start_worker()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # BlockingIOError: a wake-up is pending anyway
            os.write(self._wake_w, b"!")

    # ---------------------------------------------------------------------------- decode
    def imap(self, tasks: Iterable[DecodeTask]) -> Iterator[DecodeEvent]:
        """Decode the tasks' videos; yields their events as they happen.

        Tasks are taken from ``tasks`` lazily, one per free worker. Per video the events are
        VideoStarted, FrameChunk..., VideoFinished (or VideoFailed at any point); videos
        interleave. One ``imap`` runs at a time per pool; leaving it early stops the videos in
        flight (their workers are replaced).

        Args:
            tasks: the videos to decode.

        Yields:
            :data:`DecodeEvent` objects.
        """
        if self._closed:
            raise RuntimeError("this DecodePool is closed; create a new one")
        if self._monitor is not None:
            raise RuntimeError("DecodePool.imap is already running; finish it before the next")
        events: queue.Queue = queue.Queue()
        self._stop.clear()
        self._waiting = [0] * self.num_workers
        self.peak_chunks_waiting = 0
        self._monitor = threading.Thread(
            target=self._monitor_loop,
            args=(iter(tasks), events),
            name="video-eleatt-decode-monitor",
            daemon=True,
        )
        self._monitor.start()
        try:
            while True:
                try:
                    item = events.get(timeout=1.0)
                except queue.Empty:
                    if self._monitor is None or not self._monitor.is_alive():
                        raise RuntimeError(
                            "the decode monitor thread stopped unexpectedly"
                        ) from None
                    continue
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                slot_index, event = item
                if isinstance(event, FrameChunk):
                    with self._lock:
                        self._waiting[slot_index] -= 1
                    self._wake()
                yield event
        finally:
            self._stop_monitor()

    def _monitor_loop(self, tasks: Iterator[DecodeTask], events: queue.Queue) -> None:
        try:
            self._run(tasks, events)
        except BaseException as err:  # hand any failure to the consumer's thread
            events.put(err)

    def _run(self, tasks: Iterator[DecodeTask], events: queue.Queue) -> None:
        exhausted = False
        while not self._stop.is_set():
            # hand out work
            for index, slot in enumerate(self._slots):
                if slot.task is not None or exhausted:
                    continue
                if not slot.process.is_alive():
                    self._replace(index)
                    slot = self._slots[index]
                try:
                    task = next(tasks)
                except StopIteration:
                    exhausted = True
                    break
                self._assign(slot, task)
            busy = [(index, slot) for index, slot in enumerate(self._slots) if slot.task]
            if exhausted and not busy:
                events.put(_DONE)
                return
            # wait for a message, a death, a wake-up or the nearest deadline
            now = time.monotonic()
            waitables: list = [self._wake_r]
            timeout = 0.5
            with self._lock:
                waiting = list(self._waiting)
            for index, slot in busy:
                held = waiting[index] >= self.max_chunks_per_worker
                if held and slot.paused_since is None:
                    slot.paused_since = now
                elif not held and slot.paused_since is not None:
                    slot.paused_seconds += now - slot.paused_since
                    slot.paused_since = None
                if not held:
                    waitables.append(slot.conn)
                    timeout = min(timeout, self.timeout_s - slot.elapsed(now))
                waitables.append(slot.process.sentinel)
            ready = set(wait(waitables, timeout=max(0.0, timeout)))
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            for index, slot in busy:
                if slot.conn in ready or (slot.process.sentinel in ready and slot.conn.poll()):
                    self._read(index, slot, events)
                elif slot.process.sentinel in ready:
                    self._fail_dead(index, slot, events)
            # deadlines
            now = time.monotonic()
            for index, slot in enumerate(self._slots):
                if slot.task is None or slot.paused_since is not None:
                    continue
                elapsed = slot.elapsed(now)
                if elapsed > self.timeout_s:
                    task = slot.task
                    slot.task = None
                    self._replace(index)
                    reason = (
                        f"timed out after {elapsed:.1f} s (limit {self.timeout_s:g} s) decoding "
                        f"{task.path}; its worker was killed and replaced (a decoder can hang on "
                        "a damaged file)"
                    )
                    events.put((index, VideoFailed(task.key, reason)))

    def _assign(self, slot: _Slot, task: DecodeTask) -> None:
        if not isinstance(task, DecodeTask):
            raise TypeError(f"DecodePool.imap expects DecodeTask items, got {task!r}")
        slot.task = task
        slot.started_at = time.monotonic()
        slot.paused_seconds = 0.0
        slot.paused_since = None
        slot.conn.send(task)

    def _read(self, index: int, slot: _Slot, events: queue.Queue) -> None:
        task = slot.task
        assert task is not None
        try:
            message = slot.conn.recv()
            kind = message[0]
            if kind == "chunk":
                _, key, start, dtype_name, shape = message
                dtype = getattr(torch, dtype_name)
                buffer = bytearray(int(np.prod(shape)) * dtype.itemsize)
                slot.conn.recv_bytes_into(buffer)
                if buffer:
                    frames = torch.frombuffer(buffer, dtype=dtype).reshape(shape)
                else:
                    frames = torch.empty(shape, dtype=dtype)
                with self._lock:
                    self._waiting[index] += 1
                    self.peak_chunks_waiting = max(self.peak_chunks_waiting, sum(self._waiting))
                events.put((index, FrameChunk(key, start, frames)))
            elif kind == "started":
                _, key, info, frame_indices, timestamps = message
                events.put((index, VideoStarted(key, info, frame_indices, timestamps)))
            elif kind == "finished":
                slot.task = None
                events.put((index, VideoFinished(message[1])))
            elif kind == "failed":
                slot.task = None
                events.put((index, VideoFailed(message[1], message[2])))
            else:
                raise RuntimeError(f"unexpected message {kind!r} from a decode worker")
        except (EOFError, OSError):
            self._fail_dead(index, slot, events)

    def _fail_dead(self, index: int, slot: _Slot, events: queue.Queue) -> None:
        task = slot.task
        slot.process.join(1.0)
        cause = _describe_exit(slot.process.exitcode)
        slot.task = None
        self._replace(index)
        if task is not None:
            reason = f"decode worker died ({cause}) while decoding {task.path}; replaced"
            events.put((index, VideoFailed(task.key, reason)))


def _kill(slot: _Slot) -> None:
    """SIGKILL a worker (if alive), reap it and close the parent's end of its pipe."""
    process = slot.process
    if process.pid is not None and process.exitcode is None:
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGKILL)
        process.join(5.0)
    with contextlib.suppress(OSError):
        slot.conn.close()


def _kill_all(slots: list[_Slot]) -> None:
    for slot in slots:
        _kill(slot)
