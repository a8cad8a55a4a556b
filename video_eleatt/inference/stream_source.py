"""Frames of a live or unbounded source, sampled by time as they arrive.

:mod:`video_eleatt.video.decode` reads a whole *file* frame-exactly: it builds a frame table
by demuxing the file first. A stream has no end to demux to: a file of any length read once
front to back, a pipe (``-`` is standard input, or a FIFO), a URL FFmpeg opens (rtsp, http,
...) or a capture device (``/dev/video0``, opened with FFmpeg's ``v4l2`` input). This module
reads such a source once, in order, with PyAV, and keeps the sampling rule of
:mod:`video_eleatt.video.sampling`: the frame used for a time ``s`` is the one on screen at
``s``, the latest frame whose start time is ``<= s``. Sample times are ``(k + phase) / rate``
seconds from the first frame (``phase`` 0 for an ``fps`` cache, 0.5 for bin centres), so a
frame is handed out once the next one has arrived (its screen time is then known), and the
last frame of a finite source is shown for one frame interval.

Times: seconds from the first frame's presentation time (``frame.time``). Frames without one
(some devices, raw pipes), and AVI frames (AVI stores no presentation times), take
``index / average rate``, or the wall clock on a capture device;
a time that does not increase is moved to just after the previous one, so the sampled
frames' times always increase.

Failures, each a :class:`StreamError` naming the source, how far it got and the fix:

- *cannot be opened*: FFmpeg's reason (missing file, refused connection, no such device);
- *stalls*: no packet arrives for ``stall_timeout_s`` seconds (also while opening: a FIFO
  without a writer, a silent server). The reading thread is left blocked in FFmpeg; the
  caller ends, having kept what it emitted;
- *drops out*: a read error mid-stream, or the end of a live source (a capture device, or an
  rtsp/rtmp/udp/srt/tcp URL: those never end on their own).

A packet the decoder rejects is skipped and counted (:attr:`FrameStream.lost_packets`), as the
file decoder keeps a damaged file's clean frames.

>>> with FrameStream("data/demo/two_clips.mp4", rate=4.0) as frames:  # doctest: +SKIP
...     for frame in frames:
...         frame.time, frame.image.shape
"""

from __future__ import annotations

import math
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from video_eleatt.video.sampling import start_tolerance

DEFAULT_STALL_TIMEOUT_S = 10.0
# Schemes of sources that never end on their own: their end is a drop-out.
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "srt", "tcp", "rtp")
_QUEUE_SIZE = 8  # sampled frames decoded ahead of the consumer


class StreamError(RuntimeError):
    """A stream could not be opened, stalled or dropped out (the message says which)."""


@dataclass
class SampledFrame:
    """One sampled frame.

    Attributes:
        step: 0-based sample number.
        time: The sample time, seconds from the first frame.
        frame_time: Start time of the frame shown then (seconds from the first frame).
        frame_index: The frame's position in decoding output order.
        image: (H, W, 3) uint8 RGB.
    """

    step: int
    time: float
    frame_time: float
    frame_index: int
    image: np.ndarray


def describe_source(source: str) -> tuple[str, str | None, bool]:
    """How FFmpeg opens ``source``: ``(what to open, input format or None, is live)``."""
    if source == "-":
        return source, None, False
    if source.startswith("v4l2:"):
        return source[len("v4l2:") :], "v4l2", True
    if source.startswith("/dev/video"):
        return source, "v4l2", True
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    return source, None, scheme in LIVE_SCHEMES


class FrameStream:
    """Sampled frames of a source, read by a background thread (see the module docstring).

    Args:
        source: A path, ``-`` (standard input), a URL, or a capture device.
        rate: Samples per second of media time.
        phase: Offset of the sample times, in sample intervals (0 or 0.5).
        stall_timeout_s: Longest wait for the next packet (and for the source to open).
        max_frames: Stop after this many samples (None: until the source ends).
    """

    def __init__(
        self,
        source: str,
        rate: float,
        phase: float = 0.0,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        max_frames: int | None = None,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"sampling rate {rate!r}: expected a positive number of frames/s")
        if not stall_timeout_s > 0:
            raise ValueError(f"stall timeout {stall_timeout_s!r}: expected seconds > 0")
        self.source = source
        self.rate = float(rate)
        self.phase = float(phase)
        self.stall_timeout_s = float(stall_timeout_s)
        self.max_frames = max_frames
        self.target, self.input_format, self.live = describe_source(source)
        self.lost_packets = 0
        self.frames_decoded = 0
        self.fps: float | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUE_SIZE)
        self._activity = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._emitted = 0
        self._last_time = 0.0
        self._limit_reached = False

    # ------------------------------------------------------------------ consumer side

    def __enter__(self) -> FrameStream:
        self._activity = time.monotonic()
        self._thread = threading.Thread(target=self._read, name="stream-reader", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Asks the reader to stop; a reader blocked inside FFmpeg is left to the process."""
        self._stop.set()
        while True:  # unblock a reader waiting to put
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    def __iter__(self) -> Iterator[SampledFrame]:
        if self._thread is None:
            raise RuntimeError("use FrameStream as a context manager: `with FrameStream(...)`")
        while True:
            try:
                kind, payload = self._queue.get(timeout=0.2)
            except queue.Empty:
                idle = time.monotonic() - self._activity
                if idle > self.stall_timeout_s:
                    raise StreamError(self._stall_text(idle)) from None
                continue
            if kind == "frame":
                self._emitted += 1
                self._last_time = payload.time
                yield payload
            elif kind == "end":
                if self.live and not self._stop.is_set() and not self._limit_reached:
                    raise StreamError(
                        f"{self.source}: the live source ended (dropped out) after "
                        f"{self._emitted} sampled frames ({self._last_time:.2f} s); check the "
                        "camera or server and restart"
                    )
                return
            else:  # "error"
                raise StreamError(payload)

    def _stall_text(self, idle: float) -> str:
        if self.frames_decoded == 0 and self._emitted == 0:
            where = "before its first frame (nothing came: a pipe without writer, a silent server?)"
        else:
            where = f"after {self._emitted} sampled frames ({self._last_time:.2f} s of media)"
        return (
            f"{self.source}: the stream stalled: no data for {idle:.1f} s (stall limit "
            f"{self.stall_timeout_s:g} s) {where}. Raise --stall_timeout_s for a slow source"
        )

    # ------------------------------------------------------------------ reader thread

    def _put(self, kind: str, payload: Any) -> bool:
        """Hand an item to the consumer; False once the consumer has gone."""
        while not self._stop.is_set():
            try:
                self._queue.put((kind, payload), timeout=0.1)
                return True
            except queue.Full:
                self._activity = time.monotonic()  # waiting on the consumer is not a stall
        return False

    def _open(self) -> Any:
        options = {}
        if self.source == "-" or self.live or _is_fifo(self.target):
            # FFmpeg probes up to 5 MB / 5 s of input before the first frame; a live source
            # would wait that long for data that comes in real time.
            options.update(probesize="4096", analyzeduration="1000000")
        if "://" in self.source:
            # FFmpeg's own socket timeout (microseconds), so a dead server fails in FFmpeg too.
            options["rw_timeout"] = str(int(self.stall_timeout_s * 1e6))
        file: Any = self.target
        if self.source == "-":
            file = sys.stdin.buffer
        try:
            return av.open(
                file,
                format=self.input_format,
                options=options,
                timeout=(self.stall_timeout_s, self.stall_timeout_s),
            )
        except (av.error.FFmpegError, OSError, ValueError) as err:
            hint = "check the path" if "://" not in self.source else "check the URL and server"
            if self.input_format == "v4l2":
                hint = "check that the device exists and is not in use (v4l2-ctl --list-devices)"
            raise StreamError(
                f"cannot open stream source {self.source!r}: {type(err).__name__}: {err}; {hint}"
            ) from err

    def _read(self) -> None:
        try:
            self._decode()
        except StreamError as err:
            self._put("error", str(err))
        except Exception as err:  # a failure of the reader must reach the consumer
            self._put(
                "error",
                f"{self.source}: the stream failed (dropped out) after {self._emitted} sampled "
                f"frames: {type(err).__name__}: {err}",
            )
        else:
            self._put("end", None)

    def _decode(self) -> None:
        container = self._open()
        self._activity = time.monotonic()
        with container:
            if not container.streams.video:
                raise StreamError(f"{self.source!r} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            # AVI stores no presentation times: FFmpeg's guesses are scrambled on packed
            # B-frames (1, 2, 4, 3, ...) while the frames come out in order (video.decode)
            is_avi = "avi" in (container.format.name or "").split(",")
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            interval = 1.0 / self.fps if self.fps else 1.0 / self.rate
            sampler = _Sampler(self.rate, self.phase, self.fps or self.rate)
            previous: tuple[Any, float, int] | None = None
            first_time: float | None = None
            started = time.monotonic()
            for packet in container.demux(stream):
                self._activity = time.monotonic()
                if self._stop.is_set():
                    return
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    self.lost_packets += 1
                    continue
                for frame in frames:
                    index = self.frames_decoded
                    self.frames_decoded += 1
                    if frame.time is not None and not is_avi:
                        first_time = frame.time if first_time is None else first_time
                        frame_time = frame.time - first_time
                    elif self.input_format == "v4l2":
                        frame_time = time.monotonic() - started
                    else:
                        frame_time = index * interval
                    if previous is not None and frame_time <= previous[1]:
                        frame_time = previous[1] + 1e-6
                    if previous is not None and not self._hand_out(sampler, previous, frame_time):
                        return
                    previous = (frame, frame_time, index)
            if previous is not None:
                self._hand_out(sampler, previous, previous[1] + interval)

    def _hand_out(self, sampler: _Sampler, shown: tuple[Any, float, int], until: float) -> bool:
        """Hand out ``shown`` for every sample time before ``until``; False to stop."""
        frame, frame_time, index = shown
        image = None
        for step, sample_time in sampler.until(until):
            if self.max_frames is not None and step >= self.max_frames:
                self._limit_reached = True
                return False
            if image is None:
                image = frame.to_ndarray(format="rgb24")
            item = SampledFrame(step, sample_time, frame_time, index, image)
            if not self._put("frame", item):
                return False
        return True


class _Sampler:
    """Sample times ``(k + phase) / rate``, handed out in order."""

    def __init__(self, rate: float, phase: float, fps: float) -> None:
        self.rate, self.phase, self.fps, self.step = rate, phase, fps, 0

    def until(self, end: float) -> Iterator[tuple[int, float]]:
        """The (step, time) of every sample time before ``end`` (the next frame's start, less
        :func:`~video_eleatt.video.sampling.start_tolerance`, as the file sampler) not handed
        out yet."""
        end -= start_tolerance(self.fps, end)
        while (self.step + self.phase) / self.rate < end:
            yield self.step, (self.step + self.phase) / self.rate
            self.step += 1


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False
