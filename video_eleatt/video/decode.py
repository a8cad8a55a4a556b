"""Frame-exact decoding: frame ``i`` is the ``i``-th frame FFmpeg's decoder outputs, always.

The ground truth of a video is a sequential decode of the whole file (PyAV,
``container.decode(stream)``): its ``i``-th output frame is frame ``i``. Every frame this
module returns is that frame, or the request fails with a reason. Nothing is trusted that has
not been checked against what the decoder itself outputs.

Why not decord's random access: on MPEG-4 Part 2 AVIs with B-frames (Xvid/DivX, the encoding
of HMDB51 and other older datasets) decord's ``get_batch`` returned the wrong frame for 35-39
of 40 requests and reported timestamps of about -3.7e17 s; on an H.264 MP4 with slice errors it
counted 456 frames where FFmpeg decodes 455 and 14 of 40 random-access frames were wrong.
decord counts frames from a keyframe; this module identifies every frame by its presentation
time (pts) instead.

How a video is read (:class:`VideoReader`; steps 1 and 1b live in
:mod:`video_eleatt.video.frame_table`):

1. **Frame table from the container** (demux only, no decoding, about 3 ms for 175 frames):
   the presentation times of the stream's packets, sorted, are the frames in output order,
   and its keyframes are the seek points. The table is used only when every packet has a pts
   and no two share one (a pts-less or duplicate-pts file gets step 1b instead).
   1b. **Frame table from a decode pass**: decode every frame once without converting it and
   record what the decoder really outputs. Also used when step 3 finds the container's table
   wrong (:class:`FrameTableMismatch`; :func:`read_frames` and the decode pool retry that way).
2. **Timestamps**: seconds from the first frame's presentation, from the pts. They are
   *derived* as ``index / rate`` for AVI (a constant-rate container whose pts FFmpeg
   reconstructs) and for pts that are missing, not increasing or absurd (a span beyond 1000
   times ``frames / rate``); :attr:`VideoInfo.timestamps_source` says which.
3. **Decoding**, in presentation order, always checked against the table:
   - *sequential*: decode from the start up to the last wanted frame, convert only the
     wanted ones; output frame ``i`` must carry the table's pts ``i``. A frame the decoder
     drops (slice errors, zeroed data) shows as a pts gap; a decoder error or a frame flagged
     corrupt is a decode error. When the last frame is wanted (mode ``all``), the decoder
     must also output exactly the table's frame count.
   - *seek* (sparse requests, when it saves at least 10 % of the decoding): seek to the
     keyframe at or before each wanted frame and decode forward to the frame with the wanted
     pts, checking the same way; anything unexpected hands the rest to the sequential path.
   Only the decoded stretches are checked: a frame dropped where nothing was decoded would go
   unseen (in a damaged file), so ``video-eleatt check --thorough`` decodes every frame.
4. **Decode errors** fail the video with the first bad frame's index and time in the reason,
   or, with ``allow_partial``, the video is its decodable prefix: ``num_frames`` is the count
   before the first error and :attr:`VideoInfo.partial` is set, with the file's frame count in
   :attr:`VideoInfo.frames_in_file`. Frames are never substituted.
5. **Rotation**: frames are returned upright. A display matrix in the container (phone
   videos) is applied as ``ffmpeg`` applies it (``autorotate``), width and height are the
   upright ones, and :attr:`VideoInfo.rotation` keeps the stored angle (clockwise, as the
   ``rotate`` tag says it), which also goes into each feature file's metadata.

decord stays importable for the fork server (``video_eleatt.video.pool``) but decodes nothing
here: PyAV's sequential path is as fast as decord's ``get_batch`` on typical clips
(``scripts/bench_extract.py --decode``) and exact where decord is not.

A decoder can still hang inside native code on a hostile file; this module cannot stop that
from inside the process. :class:`video_eleatt.video.pool.DecodePool` runs readers in worker
processes and kills a worker that overruns its per-video timeout.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from video_eleatt.video import frame_table
from video_eleatt.video.frame_table import (
    CORRUPT_FRAME,
    DecodeFailure,
    FrameTable,
    first_line,
    seek_cost,
)

# Goes into every feature cache's identity: caches decoded before frame-exact decoding (decord's
# random access, container timestamps taken on trust) have another identity and are named stale.
DECODE_VERSION = "frame-exact/2"

# Seek only when it decodes at most this share of the frames the sequential path would (each
# seek restarts the decoder at a keyframe and refills its reorder delay).
SEEK_MAX_COST_SHARE = 0.9
# Container times spanning more than this many times frames / rate are absurd.
ABSURD_SPAN_FACTOR = 1000.0

TIMESTAMPS_CONTAINER = "container"
TIMESTAMPS_DERIVED = "derived"


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded exactly; the message names the file and frames.

    Attributes:
        decodable_frames: frames before the first decode error, when one was located
            (``allow_partial`` keeps them), else None.
    """

    def __init__(self, message: str, decodable_frames: int | None = None) -> None:
        super().__init__(message)
        self.decodable_frames = decodable_frames


class FrameTableMismatch(VideoDecodeError):
    """The decoder's output disagrees with the container's frame table (not a decode error).

    The caller reopens the video with ``index="decode"``, which builds the table from what the
    decoder outputs; frames already returned must be dropped.
    """


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, as decoded.

    Attributes:
        path: the file, as given to :class:`VideoReader`.
        num_frames: frames returned by the decoder (the decodable range is
            ``[0, num_frames - 1]``); with ``partial``, the frames before the first error.
        fps: average frame rate, frames per second.
        duration: seconds from the first frame's start to the last frame's end.
        width: width of the frames returned (upright, after resizing), pixels.
        height: height of the frames returned, pixels.
        timestamps_source: "container" (the frames' presentation times) or "derived"
            (``index / fps``: AVI, or missing, non-increasing or absurd container times).
        rotation: the display rotation stored in the file, in the convention of the
            ``rotate`` tag (degrees clockwise: 0, 90, 180, 270); frames are returned with it
            applied, upright.
        partial: True when only the decodable prefix is kept (``allow_partial``).
        frames_in_file: the frame count of the whole file (container packets), when partial.
    """

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    timestamps_source: str = TIMESTAMPS_CONTAINER
    rotation: int = 0
    partial: bool = False
    frames_in_file: int | None = None


class VideoReader:
    """Reads frames of one video file exactly, in sorted chunks (PyAV/FFmpeg).

    Create it in the process that decodes (one reader per video); it is not picklable.

    Args:
        path: the video file.
        width: output width in pixels (resized after decoding, from the upright frame); -1
            keeps the source width, or scales with ``height`` when only that is given.
        height: output height in pixels; -1 as for ``width``.
        num_threads: decoder threads (1 suits many workers; 0 = FFmpeg's choice).
        allow_partial: keep the decodable prefix of a file with decode errors (see
            :attr:`VideoInfo.partial`) instead of failing it.
        index: "auto" (the container's frame table when usable, else a decode pass) or
            "decode" (always a decode pass: what the decoder outputs, nothing else).

    Raises:
        VideoDecodeError: the file is missing, not a video, has no video stream, no decodable
            first frame, or (without ``allow_partial``) decode errors found while indexing.

    >>> reader = VideoReader("video.mp4")  # doctest: +SKIP
    >>> for frame_indices, frames in reader.iter_frames([0, 10, 20], chunk_size=2):
    ...     print(frame_indices.tolist(), frames.shape)  # doctest: +SKIP
    [0, 10] torch.Size([2, 48, 64, 3])
    [20] torch.Size([1, 48, 64, 3])
    """

    def __init__(
        self,
        path: str | Path,
        width: int = -1,
        height: int = -1,
        num_threads: int = 1,
        allow_partial: bool = False,
        index: str = "auto",
    ) -> None:
        if index not in ("auto", "decode"):
            raise ValueError(f"index must be 'auto' or 'decode', got {index!r}")
        self.path = str(path)
        self._num_threads = num_threads
        self._reformatter = None
        if not os.path.exists(self.path):
            raise VideoDecodeError(f"cannot open {self.path}: no such file")
        if os.path.isdir(self.path):
            raise VideoDecodeError(f"cannot open {self.path}: it is a directory, not a video")
        if os.path.getsize(self.path) == 0:
            raise VideoDecodeError(f"cannot open {self.path}: the file is empty (0 bytes)")
        with self._open() as (container, stream):
            self._time_base = stream.time_base
            self._is_avi = "avi" in (container.format.name or "").split(",")
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self._rate = float(rate) if rate else float("nan")
            table = None if index == "decode" else frame_table.container_table(container, stream)
        if table is None:
            table = self._decode_table()
        self._table = table
        if table.first_error is not None and not allow_partial:
            position, reason = table.first_error
            raise VideoDecodeError(self._error_text(position, reason), decodable_frames=position)
        self._num_frames = len(table)
        if self._num_frames < 1:
            reason = table.first_error[1] if table.first_error else "the decoder output nothing"
            raise VideoDecodeError(
                f"cannot open {self.path} as a video: no frame decodes ({reason})"
            )
        first, self.rotation = self._first_frame()
        self._timestamps, timestamps_source, self._fps = self._times()
        self._resized = width > 0 or height > 0
        out_height, out_width = _output_size(first.shape[0], first.shape[1], width, height)
        partial = len(table) < table.frames_in_file
        self.info = VideoInfo(
            path=self.path,
            num_frames=self._num_frames,
            fps=self._fps,
            duration=float(self._timestamps[-1] + 1.0 / self._fps),
            width=out_width,
            height=out_height,
            timestamps_source=timestamps_source,
            rotation=self.rotation,
            partial=partial,
            frames_in_file=table.frames_in_file if partial else None,
        )

    # ----------------------------------------------------------------------------- opening
    @contextlib.contextmanager
    def _open(self):
        import av

        try:
            container = av.open(self.path, metadata_errors="ignore")
        except Exception as err:  # av.error.* (InvalidDataError, ...), OSError
            raise VideoDecodeError(
                f"cannot open {self.path} as a video (not a video, truncated, or no video "
                f"stream): {first_line(err)}"
            ) from err
        try:
            if not container.streams.video:
                raise VideoDecodeError(
                    f"cannot open {self.path} as a video: cannot find video stream (the "
                    f"container has {len(container.streams)} streams, none of them video)"
                )
            stream = container.streams.video[0]
            if self._num_threads != 1:
                stream.thread_type = "AUTO"
                stream.thread_count = max(0, self._num_threads)
            else:  # FFmpeg's default (0) starts a slice thread per core, idle on most files
                stream.codec_context.thread_count = 1
            yield container, stream
        finally:
            container.close()

    def _decode_table(self) -> FrameTable:
        """Step 1b: decode every frame once (no conversion) and record what comes out."""
        with self._open() as (container, stream):
            return frame_table.decoded_table(container, stream, self.path)

    def _first_frame(self) -> tuple[np.ndarray, int]:
        """The first frame (upright RGB) and the stored rotation: proves the file decodes."""
        with self._open() as (container, stream):
            try:
                frame = next(frame_table.decode_checked(container, stream), None)
            except DecodeFailure as failure:
                raise VideoDecodeError(
                    f"cannot open {self.path} as a video: the first frame does not decode "
                    f"({failure.reason})",
                    decodable_frames=0,
                ) from failure
            if frame is None or frame.is_corrupt:
                raise VideoDecodeError(
                    f"cannot open {self.path} as a video: "
                    + ("no frame decodes" if frame is None else f"the first frame: {CORRUPT_FRAME}")
                )
            rotation = _rotation(frame)
            return _upright(self._rgb(frame), rotation), rotation

    def _times(self) -> tuple[np.ndarray, str, float]:
        """Frame start times (s, from the first frame), where they come from, and the fps."""
        count = self._num_frames
        pts = self._table.pts
        seconds = None
        if pts is not None and not self._is_avi and self._time_base:
            seconds = (pts[:count] - pts[0]).astype(np.float64) * float(self._time_base)
        rate = self._rate
        if seconds is not None and count > 1:
            span = float(seconds[-1])
            plausible = math.isfinite(rate) and rate > 0
            if not (span > 0 and (not plausible or span <= ABSURD_SPAN_FACTOR * count / rate)):
                seconds = None
        if seconds is not None:
            if not (math.isfinite(rate) and 0 < rate < 10_000):
                rate = (count - 1) / float(seconds[-1]) if count > 1 else 25.0
            return seconds, TIMESTAMPS_CONTAINER, rate
        if not (math.isfinite(rate) and 0 < rate < 10_000):
            raise VideoDecodeError(
                f"{self.path}: no usable frame rate (the stream says {self._rate}) and no usable "
                f"frame timestamps ({count} frames); re-mux the file with a frame rate"
            )
        return np.arange(count, dtype=np.float64) / rate, TIMESTAMPS_DERIVED, rate

    # ----------------------------------------------------------------------------- metadata
    @property
    def timestamps_from_container(self) -> bool:
        """True when :meth:`frame_timestamps` come from the container, False when derived."""
        return self.info.timestamps_source == TIMESTAMPS_CONTAINER

    def frame_timestamps(self) -> np.ndarray:
        """Start time of every frame in seconds from the first frame, float64 (num_frames,).

        The frames' presentation times, or ``index / fps`` where those are not usable (see
        :attr:`VideoInfo.timestamps_source`).
        """
        return self._timestamps.copy()

    # -------------------------------------------------------------------------------- frames
    def clamp(self, frame_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Indices clamped to the decodable range ``[0, num_frames - 1]``, int64, same order."""
        return np.clip(np.asarray(frame_indices, dtype=np.int64), 0, self._num_frames - 1)

    def iter_frames(
        self, frame_indices: Sequence[int] | np.ndarray, chunk_size: int = 32
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Decode the given frames, exactly, in sorted chunks of at most ``chunk_size``.

        Indices are sorted and clamped to ``[0, num_frames - 1]`` (an index past the end gives
        the last frame, a negative one the first; nothing wraps around); duplicates are kept
        and decoded once.

        Args:
            frame_indices: frame numbers to decode, any order.
            chunk_size: most frames per yielded chunk.

        Yields:
            ``(chunk_indices, frames)``: int64 (n,) sorted clamped indices and uint8
            (n, H, W, 3) upright RGB frames, n <= chunk_size.

        Raises:
            VideoDecodeError: a decode error (the message names the path, frame count, fps,
                the first bad frame and the indices asked for); it can come after chunks were
                yielded (the sequential path checks the whole file), so keep a video's chunks
                until the iteration ends.
            FrameTableMismatch: the decoder's output disagrees with the container's table;
                reopen with ``index="decode"`` (see :func:`read_frames`).
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        indices = np.sort(self.clamp(frame_indices))
        if len(indices) == 0:
            return
        yield from _chunked(
            indices, self._unique_frames(np.unique(indices)), chunk_size, self._output_shape()
        )

    def seek_for(self, frame_indices: np.ndarray) -> bool:
        """True when :meth:`iter_frames` seeks for these sorted indices instead of decoding all.

        Seeking needs pts to recognise frames and keyframes between the wanted frames, and is
        chosen when it decodes at most :data:`SEEK_MAX_COST_SHARE` of the frames the
        sequential path decodes (up to the last wanted frame).
        """
        table = self._table
        if table.pts is None or len(table.keyframes) < 2 or len(frame_indices) == 0:
            return False
        wanted = np.unique(frame_indices)
        return seek_cost(table.keyframes, wanted) <= SEEK_MAX_COST_SHARE * (wanted[-1] + 1)

    def _rgb(self, frame) -> np.ndarray:
        """uint8 (H, W, 3) RGB of a decoded frame, through one scaler context per reader
        (``frame.to_ndarray`` builds a new one for every frame: +0.2 ms a 320x240 frame)."""
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        return self._reformatter.reformat(frame, format="rgb24").to_ndarray()

    def _unique_frames(self, wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) of each sorted unique wanted index: seeking when it pays, and
        sequentially for whatever a seek did not deliver as expected."""
        done = -1
        if self.seek_for(wanted):
            try:
                for index, image in self._seek_frames(wanted):
                    yield index, image
                    done = index
                return
            except _SeekSurprise:
                pass  # decode the rest sequentially, which checks every frame
        yield from self._sequential_frames(wanted[wanted > done])

    def _output_shape(self) -> tuple[int, int]:
        return self.info.height, self.info.width

    def _convert(self, frame) -> np.ndarray:
        """One decoded frame as uint8 (H, W, 3) RGB, upright, at the output size."""
        image = _upright(self._rgb(frame), self.rotation)
        if self._resized:
            height, width = self._output_shape()
            if image.shape[:2] != (height, width):
                resized = torch.nn.functional.interpolate(
                    torch.from_numpy(image).permute(2, 0, 1)[None].float(),
                    size=(height, width),
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )
                image = resized[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
        if image.shape[:2] != self._output_shape():
            raise VideoDecodeError(
                f"{self.path}: a frame of size {image.shape[1]}x{image.shape[0]} in a video "
                f"of {self.info.width}x{self.info.height}; frame sizes that change mid-stream "
                "are not supported (re-encode the file)"
            )
        return image

    def _sequential_frames(self, wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) of each unique wanted index: decoded from the start and checked."""
        table = self._table
        pts = table.pts
        limit = self._num_frames  # frames to deliver (the prefix when partial)
        partial = limit < table.frames_in_file
        next_wanted = 0
        good = 0  # frames output and checked so far
        with self._open() as (container, stream):
            try:
                for position, frame in enumerate(frame_table.decode_checked(container, stream)):
                    if position >= limit:
                        if partial:
                            return  # the prefix is delivered; what follows it is damaged
                        raise self._mismatch(position, f"an extra frame (pts {frame.pts})")
                    if frame.is_corrupt:
                        raise DecodeFailure(CORRUPT_FRAME)
                    if pts is not None and frame.pts != pts[position]:
                        self._raise_gap(position, frame.pts)
                    good = position + 1
                    if next_wanted < len(wanted) and wanted[next_wanted] == position:
                        yield position, self._convert(frame)
                        next_wanted += 1
                        if next_wanted == len(wanted) and good < limit:
                            return  # the frames after the last one wanted need not decode
            except DecodeFailure as failure:
                if partial and good >= limit:
                    return
                raise VideoDecodeError(
                    self._error_text(good, failure.reason, wanted), decodable_frames=good
                ) from failure
        if good < limit:
            reason = f"the decoder output {good} frames, the file has {limit}"
            raise VideoDecodeError(self._error_text(good, reason, wanted), decodable_frames=good)

    def _seek_frames(self, wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) of each wanted index, seeking to the keyframe before each.

        Frames are recognised by pts. Anything unexpected (a seek that lands elsewhere, a pts
        not in the table, an error) raises :class:`_SeekSurprise`, and the caller decodes the
        remaining frames sequentially, where every frame is checked.
        """
        table = self._table
        assert table.pts is not None
        pts = table.pts
        with self._open() as (container, stream):
            frames = None
            position = -1  # table position of the last frame decoded
            for target in wanted.tolist():
                keyframe = int(
                    table.keyframes[np.searchsorted(table.keyframes, target, "right") - 1]
                )
                if frames is None or keyframe > position + 1 or target <= position:
                    try:
                        container.seek(int(pts[keyframe]), stream=stream, backward=True)
                    except Exception as err:
                        raise _SeekSurprise(first_line(err)) from err
                    frames = frame_table.decode_checked(container, stream)
                    position = keyframe - 1
                try:
                    for frame in frames:
                        found = np.searchsorted(pts, frame.pts) if frame.pts is not None else -1
                        if found < 0 or found >= len(pts) or pts[found] != frame.pts:
                            raise _SeekSurprise(f"a frame with pts {frame.pts} not in the table")
                        if found <= position:
                            continue  # before the keyframe (leading frames of an open GOP)
                        if found != position + 1 or frame.is_corrupt:
                            raise _SeekSurprise(f"frame {found} after frame {position}")
                        position = int(found)
                        if found == target:
                            yield target, self._convert(frame)
                            break
                    else:
                        raise _SeekSurprise(f"the decoder ended before frame {target}")
                except DecodeFailure as failure:
                    raise _SeekSurprise(failure.reason) from failure

    def _raise_gap(self, position: int, got_pts: int | None) -> None:
        """The decoder skipped frame ``position`` (a pts gap): a decode error, or a bad table."""
        pts = self._table.pts
        assert pts is not None
        if (
            got_pts is not None
            and pts[position] < got_pts
            and got_pts in set(pts[position : position + 64].tolist())
        ):
            raise VideoDecodeError(
                self._error_text(position, "the decoder skipped this frame (a damaged packet)"),
                decodable_frames=position,
            )
        raise self._mismatch(position, f"pts {got_pts} where the container says {pts[position]}")

    def _mismatch(self, position: int, what: str) -> FrameTableMismatch:
        return FrameTableMismatch(
            f"{self.path}: the decoder's output disagrees with the container's frame table at "
            f"frame {position}: {what}; reopen with index='decode'"
        )

    def _error_text(self, position: int, reason: str, wanted: np.ndarray | None = None) -> str:
        count = self._table.frames_in_file
        rate = self._rate if math.isfinite(self._rate) else float("nan")
        asked = f"; frames asked for: {short_indices(wanted)}" if wanted is not None else ""
        return (
            f"cannot decode {self.path} exactly ({count} frames at {rate:.3f} fps): frame "
            f"{position} (about {position / rate if rate > 0 else float('nan'):.2f} s) failed: "
            f"{reason}{asked}. Frames 0-{position - 1} decode; `allow_partial` keeps them"
            if position > 0
            else f"cannot decode {self.path} ({count} frames at {rate:.3f} fps): frame 0 "
            f"failed: {reason}{asked}"
        )

    def __repr__(self) -> str:
        return f"VideoReader({self.path!r}, num_frames={self._num_frames}, fps={self._fps:.3f})"


# ------------------------------------------------------------------------- decoding helpers
class _SeekSurprise(Exception):
    """The seek path met something it did not expect; the sequential path takes over."""


def _chunked(
    indices: np.ndarray,
    frames: Iterator[tuple[int, np.ndarray]],
    chunk_size: int,
    shape: tuple[int, int],
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Sorted ``indices`` (repeats allowed) in chunks, from unique (index, frame) pairs."""
    height, width = shape
    chunk_start = 0
    chunk = np.empty((min(chunk_size, len(indices)), height, width, 3), np.uint8)
    position = 0
    for index, image in frames:
        while position < len(indices) and indices[position] == index:
            chunk[position - chunk_start] = image
            position += 1
            if position - chunk_start == len(chunk):
                yield indices[chunk_start:position], torch.from_numpy(chunk)
                chunk_start = position
                remaining = min(chunk_size, len(indices) - position)
                chunk = np.empty((remaining, height, width, 3), np.uint8)
    for _ in frames:  # the sequential path checks the rest of the file
        pass
    if position < len(indices):
        raise RuntimeError(f"decoded {position} of {len(indices)} frames")  # a bug, not input


def _rotation(frame) -> int:
    """The clockwise turn (0, 90, 180, 270) that makes a decoded frame upright.

    FFmpeg's display matrix angle (``frame.rotation``) is counterclockwise: a phone video
    tagged ``rotate=90`` reads -90 and is turned 90 degrees clockwise, as ffmpeg's
    ``autorotate`` does.
    """
    try:
        angle = float(frame.rotation or 0)
    except Exception:
        return 0
    return round(-angle / 90.0) * 90 % 360


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """(H, W, 3) turned ``rotation`` degrees clockwise."""
    if rotation == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-rotation // 90))


def _output_size(height: int, width: int, out_width: int, out_height: int) -> tuple[int, int]:
    if out_width > 0 and out_height > 0:
        return out_height, out_width
    if out_width > 0:
        return max(1, round(height * out_width / width)), out_width
    if out_height > 0:
        return out_height, max(1, round(width * out_height / height))
    return height, width


def short_indices(indices: np.ndarray | None) -> str:
    """Frame indices for a message: all of up to 8, else the first 4 and the last 2."""
    values = [] if indices is None else np.asarray(indices).tolist()
    if len(values) <= 8:
        return str(values)
    return f"[{', '.join(map(str, values[:4]))}, ..., {', '.join(map(str, values[-2:]))}]"


def read_frames(
    path: str | Path,
    choose: Callable[[VideoInfo, np.ndarray], np.ndarray],
    chunk_size: int = 32,
    allow_partial: bool = False,
    **reader_options,
) -> tuple[VideoInfo, np.ndarray, np.ndarray, torch.Tensor]:
    """Open a video, choose frames from its info and timestamps, decode them (all in memory).

    A :class:`FrameTableMismatch` reopens the video with ``index="decode"`` once, so callers
    never see it; use this for a few frames of a video (prediction, overlays), and
    :class:`video_eleatt.video.pool.DecodePool` for many.

    Args:
        path: the video file.
        choose: ``(info, timestamps) -> frame indices`` (e.g. a sampling config's
            ``sample_frame_indices``); indices are clamped and sorted.
        chunk_size: frames per decoded chunk.
        allow_partial: keep the decodable prefix of a damaged file.
        **reader_options: ``width``, ``height``, ``num_threads`` of :class:`VideoReader`.

    Returns:
        ``(info, frame_indices, timestamps, frames)``: int64 (K,) sorted indices, float64
        (K,) their start times in seconds, uint8 (K, H, W, 3) upright RGB frames.

    Raises:
        VideoDecodeError: the file cannot be opened or decoded exactly.
    """
    index = "auto"
    while True:
        reader = VideoReader(path, allow_partial=allow_partial, index=index, **reader_options)
        timestamps = reader.frame_timestamps()
        frame_indices = np.sort(reader.clamp(choose(reader.info, timestamps)))
        try:
            chunks = [frames for _, frames in reader.iter_frames(frame_indices, chunk_size)]
        except FrameTableMismatch:
            if index == "decode":
                raise
            index = "decode"
            continue
        except VideoDecodeError as err:
            if allow_partial and index == "auto" and err.decodable_frames is not None:
                index = "decode"  # the decode pass finds the decodable prefix
                continue
            raise
        info = reader.info
        shape = (0, info.height, info.width, 3)
        frames = torch.cat(chunks) if chunks else torch.empty(shape, dtype=torch.uint8)
        return info, frame_indices, timestamps[frame_indices], frames
