"""decord behind a small interface: one reader per video, frames in sorted chunks.

Rules this module keeps (decord misbehaves otherwise):

- torch is imported before decord, and decord only inside :class:`VideoReader` (never at
  module import), so importing this module has no side effects; decord's bridge is left at
  its default and frames are converted with ``torch.from_numpy(x.asnumpy())``.
- One :class:`VideoReader` per video, created in the process that decodes it (decord readers
  must not cross a fork).
- Frames are fetched with ``get_batch`` in sorted chunks of at most ``chunk_size`` frames,
  never the whole video at once, so memory is bounded by the chunk, not the video.
- Requested indices are clamped to the decodable range ``[0, num_frames - 1]`` (see
  :meth:`VideoReader.iter_frames`).
- decord's reader thread runs ahead of ``get_batch``: its loop pushes a new packet whenever the
  decoder has not produced a frame yet, so the lead grows over a video, and while the caller
  is busy elsewhere (a worker blocked on a slow consumer) the decoder turns that lead into RGB
  frames in memory, up to the whole video (measured: 1338 MiB for a 10-minute 320x240 video).
  So dense requests (most of the frames, at the source size) are decoded with PyAV, one frame
  at a time in presentation order and converted only when wanted: nothing is decoded while
  the caller is away, the frames are bit-identical to decord's (checked on lossy and lossless
  H.264) and it costs about half decord's CPU. Sparse requests, and in-decoder resizing (whose
  PyAV scaler differs from decord's by a few levels), use decord ``get_batch`` followed by a
  reset of its decoder (``seek(0)``), which drops the lead; the next chunk starts from a
  keyframe, as decord's own seek does for a sparse request anyway.

decord can hang forever (holding the GIL) on a file whose header over-reports its frames; this
module cannot stop that from inside the process. :class:`video_eleatt.video.pool.DecodePool`
runs readers in worker processes and kills a worker that overruns its per-video timeout.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from video_eleatt.video.sampling import usable_timestamps

# Dense requests (at most this many frames apart on average) are decoded sequentially with PyAV.
SEQUENTIAL_MAX_MEAN_GAP = 16

# "[10:31:19] /github/workspace/src/video/video_reader.cc:151: " before every decord message
_DECORD_PREFIX = re.compile(r"^(\[[0-9:]+\] )?\S+\.(cc|h):\d+: ")


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded; the message names the file and the request."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, as decoded.

    Attributes:
        path: the file, as given to :class:`VideoReader`.
        num_frames: number of frames decord indexes (the decodable range is
            ``[0, num_frames - 1]``).
        fps: average frame rate, frames per second.
        duration: seconds from the first frame's start to the last frame's end.
        width: width of the frames returned (after in-decoder resizing), pixels.
        height: height of the frames returned, pixels.
    """

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int


class VideoReader:
    """Reads frames of one video file with decord, in sorted chunks.

    Create it in the process that decodes (one reader per video); it is not picklable.

    Args:
        path: the video file.
        width: decode width in pixels (decord resizes inside the decoder); -1 keeps the source
            width, or scales with ``height`` when only that is given.
        height: decode height in pixels; -1 as for ``width``.
        num_threads: decoder threads (0 = decord's automatic choice; 1 suits many workers).

    Raises:
        VideoDecodeError: the file is missing, not a video, has no video stream or no
            decodable first frame.

    >>> reader = VideoReader("video.mp4")  # doctest: +SKIP
    >>> for frame_indices, frames in reader.iter_frames([0, 10, 20], chunk_size=2):
    ...     print(frame_indices.tolist(), frames.shape)  # doctest: +SKIP
    [0, 10] torch.Size([2, 48, 64, 3])
    [20] torch.Size([1, 48, 64, 3])
    """

    def __init__(
        self, path: str | Path, width: int = -1, height: int = -1, num_threads: int = 1
    ) -> None:
        self.path = str(path)
        self._num_threads = num_threads
        if not os.path.exists(self.path):
            raise VideoDecodeError(f"cannot open {self.path}: no such file")
        if os.path.isdir(self.path):
            raise VideoDecodeError(f"cannot open {self.path}: it is a directory, not a video")
        if os.path.getsize(self.path) == 0:
            raise VideoDecodeError(f"cannot open {self.path}: the file is empty (0 bytes)")
        import decord  # after torch (imported above), and only where decoding happens

        try:
            self._reader = decord.VideoReader(
                self.path, width=width, height=height, num_threads=num_threads
            )
        except (RuntimeError, AssertionError, decord.DECORDError) as err:
            raise VideoDecodeError(
                f"cannot open {self.path} as a video (not a video, truncated, or no video "
                f"stream): {_first_line(err)}"
            ) from err
        self._num_frames = len(self._reader)
        if self._num_frames < 1:
            raise VideoDecodeError(f"{self.path} has no frames (decord reports {self._num_frames})")
        self._timestamps = self._read_timestamps()
        self._fps = self._read_fps()
        first = self._get_batch(np.zeros(1, np.int64))  # (1, H, W, 3): decodability and size
        self._drop_read_ahead()
        self._resized = width > 0 or height > 0
        if self._timestamps_ok:
            starts_ends = self._raw_timestamps
            duration = float(starts_ends[-1, 1] - starts_ends[0, 0])
            if not (math.isfinite(duration) and duration > 0):
                duration = self._num_frames / self._fps
        else:
            duration = self._num_frames / self._fps
        self.info = VideoInfo(
            path=self.path,
            num_frames=self._num_frames,
            fps=self._fps,
            duration=duration,
            width=int(first.shape[2]),
            height=int(first.shape[1]),
        )

    # ----------------------------------------------------------------------------- metadata
    def _read_timestamps(self) -> np.ndarray:
        try:
            raw = np.asarray(
                self._reader.get_frame_timestamp(np.arange(self._num_frames)), dtype=np.float64
            )  # (num_frames, 2): start and end seconds
        except Exception:  # decord raises several types here; any failure means "no timestamps"
            raw = np.zeros((0, 2))
        self._raw_timestamps = raw
        starts = raw[:, 0] if raw.ndim == 2 and raw.shape[0] == self._num_frames else raw
        self._timestamps_ok = usable_timestamps(starts, self._num_frames)
        return starts if self._timestamps_ok else np.empty(0)

    def _read_fps(self) -> float:
        try:
            fps = float(self._reader.get_avg_fps())
        except Exception:
            fps = float("nan")
        if math.isfinite(fps) and 0 < fps < 10_000:
            return fps
        if self._timestamps_ok and self._num_frames > 1:
            span = self._timestamps[-1] - self._timestamps[0]
            return (self._num_frames - 1) / span
        raise VideoDecodeError(
            f"{self.path}: no usable frame rate (decord reports {fps}) and no usable frame "
            f"timestamps ({self._num_frames} frames); re-mux the file with a frame rate"
        )

    @property
    def timestamps_from_container(self) -> bool:
        """True when :meth:`frame_timestamps` come from the container, False when estimated."""
        return self._timestamps_ok

    def frame_timestamps(self) -> np.ndarray:
        """Start time of every frame in seconds, float64 (num_frames,).

        From decord's ``get_frame_timestamp`` (the container's presentation times, float32
        precision) when those are finite, non-decreasing and not all equal; otherwise
        ``index / fps`` (see :attr:`timestamps_from_container`).
        """
        if self._timestamps_ok:
            return self._timestamps.copy()
        return np.arange(self._num_frames, dtype=np.float64) / self._fps

    # -------------------------------------------------------------------------------- frames
    def clamp(self, frame_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Indices clamped to the decodable range ``[0, num_frames - 1]``, int64, same order."""
        return np.clip(np.asarray(frame_indices, dtype=np.int64), 0, self._num_frames - 1)

    def iter_frames(
        self, frame_indices: Sequence[int] | np.ndarray, chunk_size: int = 32
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Decode the given frames in sorted chunks of at most ``chunk_size``.

        Indices are sorted and clamped to ``[0, num_frames - 1]`` (an index past the end gives
        the last frame, a negative one the first; nothing wraps around); duplicates are kept
        and decoded once by decord. Each chunk is one ``get_batch`` call.

        Args:
            frame_indices: frame numbers to decode, any order.
            chunk_size: most frames per ``get_batch`` call (and per yielded chunk).

        Yields:
            ``(chunk_indices, frames)``: int64 (n,) sorted clamped indices and uint8
            (n, H, W, 3) RGB frames, n <= chunk_size.

        Raises:
            VideoDecodeError: decord failed; the message names the path, frame count, fps and
                the indices asked for.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        indices = np.sort(self.clamp(frame_indices))
        done = 0
        if self.sequential_for(indices):
            sequential = _SequentialDecoder(self)
            try:
                for chunk_indices, frames in sequential.iter_frames(indices, chunk_size):
                    yield chunk_indices, frames
                    done += len(chunk_indices)
                return
            except _SequentialMismatch:
                pass  # continue below with decord from the first frame not yet delivered
            finally:
                sequential.close()
        for start in range(done, len(indices), chunk_size):
            chunk_indices = indices[start : start + chunk_size]
            frames = self._get_batch(chunk_indices)
            self._drop_read_ahead()
            yield chunk_indices, frames

    def sequential_for(self, frame_indices: np.ndarray) -> bool:
        """True when :meth:`iter_frames` decodes these sorted indices sequentially with PyAV.

        That is at the source size, with container timestamps to check each frame against,
        and when the frames asked for are dense: on average at most
        :data:`SEQUENTIAL_MAX_MEAN_GAP` frames apart (decoding the frames in between costs less
        than seeking to a keyframe for each).
        """
        if self._resized or not self._timestamps_ok or len(frame_indices) == 0:
            return False
        span = int(frame_indices[-1]) + 1  # decoded from the start of the file
        return span <= SEQUENTIAL_MAX_MEAN_GAP * len(frame_indices)

    def _drop_read_ahead(self) -> None:
        """Reset decord's decoder: drops the frames its thread decoded ahead of us."""
        try:
            self._reader.seek(0)
        except Exception as err:
            raise VideoDecodeError(
                f"cannot rewind {self.path} ({self._num_frames} frames) after decoding: "
                f"{_first_line(err)}"
            ) from err

    def _get_batch(self, chunk_indices: np.ndarray) -> torch.Tensor:
        try:
            batch = self._reader.get_batch(chunk_indices.tolist())
            return torch.from_numpy(batch.asnumpy())  # (n, H, W, 3) uint8
        except Exception as err:  # decord raises DECORDError, RuntimeError, IndexError, ...
            fps = getattr(self, "_fps", float("nan"))
            hint = ""
            if "DECORDArrayCopyFromTo" in str(err):
                hint = (
                    " (decord 0.6.0 fails on some small frame widths, e.g. 16, 24, 48, 72 "
                    "pixels; decode at another width)"
                )
            raise VideoDecodeError(
                f"cannot decode {self.path} ({self._num_frames} frames at {fps:.3f} fps): "
                f"frames {_short(chunk_indices)} failed: {_first_line(err)}{hint}"
            ) from err

    def __repr__(self) -> str:
        return f"VideoReader({self.path!r}, num_frames={self._num_frames}, fps={self._fps:.3f})"


def _first_line(err: BaseException) -> str:
    """The useful line of a decord error: without its timestamp, source location and stack."""
    text = str(err).strip() or type(err).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = _DECORD_PREFIX.sub("", lines[0] if lines else text)
    return f"{type(err).__name__}: {line}"[:400]


def _short(indices: np.ndarray) -> str:
    values = indices.tolist()
    if len(values) <= 8:
        return str(values)
    return f"[{', '.join(map(str, values[:4]))}, ..., {', '.join(map(str, values[-2:]))}]"


class _SequentialMismatch(Exception):
    """PyAV's frames do not line up with decord's index; the caller falls back to decord."""


class _SequentialDecoder:
    """Decodes one video front to back with PyAV, synchronously, converting wanted frames only.

    Frame ``i`` is the ``i``-th frame in presentation order, as in decord; each one's time is
    checked against decord's timestamp of index ``i`` and any disagreement (a packet that gave
    no frame, a file PyAV cannot open) raises :class:`_SequentialMismatch` before a wrong frame
    is delivered.
    """

    def __init__(self, reader: VideoReader) -> None:
        import av

        self.reader = reader
        try:
            self.container = av.open(reader.path)
            self.stream = self.container.streams.video[0]
        except Exception as err:
            raise _SequentialMismatch(str(err)) from err
        if reader._num_threads != 1:
            self.stream.thread_type = "AUTO"
            self.stream.thread_count = max(0, reader._num_threads)
        self.time_base = float(self.stream.time_base) if self.stream.time_base else None
        self.start_pts = self.stream.start_time or 0
        starts = reader._raw_timestamps[:, 0]  # decord's starts, float32 precision
        self.starts = starts.tolist()  # Python floats: indexed once per decoded frame
        gaps = np.diff(starts)
        positive = gaps[gaps > 0]
        # half the smallest gap between frames, but never below float32's resolution
        self.tolerance = max(float(positive.min()) / 2 if len(positive) else 0.0, 1e-3)

    def iter_frames(
        self, indices: np.ndarray, chunk_size: int
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        width, height = self.reader.info.width, self.reader.info.height
        position = 0  # next entry of indices to fill
        chunk_start = 0
        chunk = np.empty((min(chunk_size, len(indices)), height, width, 3), np.uint8)
        try:
            frames = self.container.decode(self.stream)
            for frame_index, frame in enumerate(frames):
                if position >= len(indices):
                    break
                self._check(frame_index, frame)
                if frame_index < indices[position]:
                    continue
                image = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                if image.shape != (height, width, 3):
                    raise _SequentialMismatch(f"frame size {image.shape}")
                while position < len(indices) and indices[position] == frame_index:
                    chunk[position - chunk_start] = image
                    position += 1
                    if position - chunk_start == len(chunk):
                        yield indices[chunk_start:position], torch.from_numpy(chunk)
                        chunk_start = position
                        remaining = min(chunk_size, len(indices) - position)
                        chunk = np.empty((remaining, height, width, 3), np.uint8)
        except _SequentialMismatch:
            raise
        except Exception as err:  # PyAV failed where decord may not: let decord try
            raise _SequentialMismatch(str(err)) from err
        if position < len(indices):
            raise _SequentialMismatch(f"PyAV gave fewer frames than decord ({position})")

    def _check(self, frame_index: int, frame) -> None:
        if frame_index >= len(self.starts) or frame.pts is None or self.time_base is None:
            raise _SequentialMismatch(f"frame {frame_index} has no usable time")
        seconds = (frame.pts - self.start_pts) * self.time_base
        if abs(seconds - self.starts[frame_index]) > self.tolerance:
            raise _SequentialMismatch(
                f"frame {frame_index} at {seconds:.6f} s, decord says "
                f"{self.starts[frame_index]:.6f} s"
            )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
