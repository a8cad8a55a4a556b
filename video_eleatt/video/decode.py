"""Frame-exact decoding: frame ``i`` is the ``i``-th frame in presentation order, always.

The ground truth of a video is a sequential decode of the whole file (PyAV, packet by packet):
its frames, put in presentation order, are frames ``0, 1, 2, ...``. Presentation order is the
order of the frames' presentation times (pts) where the container stores them (MP4, MOV, MKV,
WebM), and the decoder's output order where it does not (AVI). Every frame this module returns
is that frame, or the request fails with a reason. Nothing is trusted that has not been checked
against what the decoder itself outputs.

Why not decord's random access: on MPEG-4 Part 2 AVIs with B-frames (Xvid/DivX, the encoding
of HMDB51 and other older datasets) decord's ``get_batch`` returned the wrong frame for 35-39
of 40 requests and reported timestamps of about -3.7e17 s; on an H.264 MP4 with slice errors it
counted 456 frames where FFmpeg decodes 455 and 14 of 40 random-access frames were wrong.

How a video is read (:class:`VideoReader`; the table lives in
:mod:`video_eleatt.video.frame_table`):

1. **Frame table from the container** (demux only, no decoding, about 3 ms for 175 frames):
   the sorted pts of the stream's packets are the frames, and its keyframes the seek points.
   Used only when every packet has a pts and no two share one. For AVI only the packet count
   is read: frames are known by output order, and the pts FFmpeg guesses for AVI frames are
   never used (with packed B-frames they come out as 1, 2, 4, 3, 5, 7, 6, ... on frames that
   are in the right order).
   1b. **Frame table from a decode pass**: decode every frame once without converting it and
   record what the decoder really outputs, and what it lost. Used when the container's table
   is unusable, and when decoding finds it wrong or finds damage (:class:`FrameTableMismatch`;
   :func:`read_frames` and the decode pool reopen the video that way).
2. **Timestamps**: seconds from the first frame's presentation (lost frames included), from
   the pts. For AVI, and for pts that are missing, repeated, not increasing or absurd (a span
   beyond 1000 times ``frames / rate``), they are ``slot / rate``, where a frame's slot is its
   output position counting lost frames; :attr:`VideoInfo.timestamps_source` says which.
3. **Decoding**, always checked against the table:
   - *sequential*: decode from the start up to the last wanted frame, convert only the wanted
     ones. A frame is delivered once every frame before it in presentation order has come out
     of the decoder, so a frame the decoder never outputs (a pts gap) is found before any
     frame after it is handed out. When the last frame is wanted (mode ``all``), the decoder
     must also output exactly the table's frame count.
   - *seek* (sparse requests, when it saves at least 10 % of the decoding): seek to the
     keyframe at or before each wanted frame and decode forward to it, checking the same way
     (by pts; in an MPEG-4 AVI by the packet that released each frame); anything unexpected
     hands the rest to the sequential path. Other AVIs never seek: their output order is all
     that identifies a frame.
   Only the decoded stretches are checked: a frame dropped where nothing was decoded would go
   unseen, so ``video-eleatt check --thorough`` decodes every frame.
4. **Damage** (a packet the decoder rejects, a frame flagged corrupt, and the frames decoded
   from their broken references up to the next keyframe) is kept apart, never papered over:
   the video is its clean frames, the lost ones leave a gap in the timestamps, and
   :attr:`VideoInfo.lost_frames` and friends say how many were lost and when. With
   ``on_damage="fail"`` the first loss fails the video instead; a video that loses more than
   ``max_lost_fraction`` of its frames fails either way.
5. **Rotation**: frames are returned upright. A display matrix in the container (phone
   videos) is applied as ``ffmpeg`` applies it (``autorotate``), width and height are the
   upright ones, and :attr:`VideoInfo.rotation` keeps the stored angle (clockwise, as the
   ``rotate`` tag says it), which also goes into each feature file's metadata.

decord decodes nothing here (``scripts/bench_extract.py --mode decode`` times it as the
"before"). A decoder can still hang in native code on a hostile file:
:class:`video_eleatt.video.pool.DecodePool` kills a worker that overruns its timeout.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from video_eleatt.video import frame_table
from video_eleatt.video.frame_table import (
    DecodeFailure,
    FrameTable,
    first_line,
    seek_cost,
)
from video_eleatt.video.images import chunked, display_rotation, output_size, upright
from video_eleatt.video.info import (  # re-exported: the names callers import from here
    DECODE_REVISION,
    DECODE_VERSION,
    MAX_LOST_FRACTION,
    ON_DAMAGE,
    TIMESTAMPS_CONTAINER,
    TIMESTAMPS_DERIVED,
    FrameTableMismatch,
    VideoDecodeError,
    VideoInfo,
    damage_text,
    short_indices,
)

__all__ = [
    "ABSURD_SPAN_FACTOR",
    "DECODE_REVISION",
    "DECODE_VERSION",
    "MAX_LOST_FRACTION",
    "TIMESTAMPS_CONTAINER",
    "TIMESTAMPS_DERIVED",
    "FrameTableMismatch",
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "damage_text",
    "read_frames",
    "short_indices",
]

# Seek only when it decodes at most this share of the frames the sequential path would (each
# seek restarts the decoder at a keyframe and refills its reorder delay).
SEEK_MAX_COST_SHARE = 0.9
# Container times spanning more than this many times frames / rate are absurd.
ABSURD_SPAN_FACTOR = 1000.0
# Past this many frames after a wanted frame without it, the seek path gives up (a lost frame).
REORDER_LIMIT = 64


class VideoReader:
    """Reads frames of one video file exactly, in sorted chunks (PyAV/FFmpeg).

    Create it in the process that decodes (one reader per video); it is not picklable.

    Args:
        path: the video file.
        width: output width in pixels (resized after decoding, from the upright frame); -1
            keeps the source width, or scales with ``height`` when only that is given.
        height: output height in pixels; -1 as for ``width``.
        num_threads: decoder threads (1 suits many workers; 0 = FFmpeg's choice).
        on_damage: "keep" (the clean frames of a damaged file, the losses recorded in
            :attr:`info`) or "fail" (the first lost frame fails the video).
        max_lost_fraction: a video that loses more than this share of its frames fails.
        index: "auto" (the container's frame table when usable, else a decode pass) or
            "decode" (always a decode pass: what the decoder outputs, nothing else).

    Raises:
        VideoDecodeError: the file is missing, not a video, has no video stream, no decodable
            frame, or (found while indexing) damage that ``on_damage`` or
            ``max_lost_fraction`` refuses.

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
        on_damage: str = "keep",
        max_lost_fraction: float = MAX_LOST_FRACTION,
        index: str = "auto",
    ) -> None:
        if index not in ("auto", "decode"):
            raise ValueError(f"index must be 'auto' or 'decode', got {index!r}")
        if on_damage not in ON_DAMAGE:
            raise ValueError(f"on_damage must be one of {ON_DAMAGE}, got {on_damage!r}")
        if not 0.0 <= max_lost_fraction <= 1.0:
            raise ValueError(f"max_lost_fraction must be in [0, 1], got {max_lost_fraction}")
        self.path = str(path)
        self._num_threads = num_threads
        self._strict = on_damage == "fail"
        self._reformatter = None
        self._release_delay: int | None = None
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
            table = None
            if index == "auto":
                table = frame_table.container_table(container, stream, by_pts=not self._is_avi)
        if table is None:
            table = self._decode_table()
        self._table = table
        self._num_frames = len(table)
        if self._num_frames < 1:
            reason = table.first_error[1] if table.first_error else "the decoder output nothing"
            raise VideoDecodeError(
                f"cannot open {self.path} as a video: no frame decodes ({reason})"
            )
        if table.first_error is not None and self._strict:
            position, reason = table.first_error
            raise VideoDecodeError(self._error_text(position, reason), decodable_frames=position)
        first, self.rotation = self._first_frame()
        self._timestamps, timestamps_source, self._fps, lost_times = self._times()
        self._resized = width > 0 or height > 0
        out_height, out_width = output_size(first.shape[0], first.shape[1], width, height)
        self.info = VideoInfo(
            path=self.path,
            num_frames=self._num_frames,
            fps=self._fps,
            duration=float(self._timestamps[-1] + 1.0 / self._fps),
            width=out_width,
            height=out_height,
            timestamps_source=timestamps_source,
            rotation=self.rotation,
            lost_frames=table.lost,
            frames_in_file=table.frames_in_file if table.lost else None,
            lost_first_s=float(lost_times[0]) if len(lost_times) else None,
            lost_last_s=float(lost_times[-1]) if len(lost_times) else None,
            damage=table.first_error[1] if table.lost and table.first_error else None,
        )
        if table.lost > max_lost_fraction * table.frames_in_file:
            raise VideoDecodeError(
                f"{self.path} is mostly damaged: {table.lost} of {table.frames_in_file} frames "
                f"lost ({table.lost / table.frames_in_file:.0%}; the limit, max_lost_fraction, "
                f"is {max_lost_fraction:.0%}), {damage_text(self.info)}",
                decodable_frames=table.first_error[0] if table.first_error else None,
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
            return frame_table.decoded_table(container, stream, self.path, not self._is_avi)

    def _first_frame(self) -> tuple[np.ndarray, int]:
        """The first clean frame (upright RGB) and the stored rotation."""
        with self._open() as (container, stream):
            losses, state = frame_table.Losses(), frame_table.DecodeState()
            clean = frame_table.clean_frames(container, stream, losses, state)
            frame = next((f for _, f in clean), None)
            if frame is None:
                reason = losses.reasons[0] if len(losses) else "the decoder output nothing"
                raise VideoDecodeError(
                    f"cannot open {self.path} as a video: no frame decodes ({reason})",
                    decodable_frames=0,
                )
            # the packet that releases frame 0: the AVI seek path checks its landings by it
            if self._table.pts is None and state.released_by is not None:
                self._release_delay = state.released_by
            rotation = display_rotation(frame)
            return upright(self._rgb(frame), rotation), rotation

    def _times(self) -> tuple[np.ndarray, str, float, np.ndarray]:
        """Frame start times (s, from the first frame or lost frame), where they come from,
        the fps, and the start times of the lost frames."""
        table = self._table
        count = self._num_frames
        seconds = lost = None
        if table.pts is not None and not self._is_avi and self._time_base:
            origin = int(table.pts[0])
            if len(table.lost_pts):
                origin = min(origin, int(table.lost_pts[0]))
            tick = float(self._time_base)
            seconds = (table.pts - origin).astype(np.float64) * tick
            lost = (table.lost_pts - origin).astype(np.float64) * tick
        rate = self._rate
        if seconds is not None and count > 1:
            span = float(seconds[-1] - seconds[0])
            plausible = math.isfinite(rate) and rate > 0
            if not (span > 0 and (not plausible or span <= ABSURD_SPAN_FACTOR * count / rate)):
                seconds = None
        if seconds is not None:
            if not (math.isfinite(rate) and 0 < rate < 10_000):
                span = float(seconds[-1] - seconds[0])
                rate = (count - 1) / span if count > 1 else 25.0
            return seconds, TIMESTAMPS_CONTAINER, rate, lost
        if not (math.isfinite(rate) and 0 < rate < 10_000):
            raise VideoDecodeError(
                f"{self.path}: no usable frame rate (the stream says {self._rate}) and no usable "
                f"frame timestamps ({count} frames); re-mux the file with a frame rate"
            )
        slots = table.slots if table.slots is not None else np.arange(count)
        lost_slots = table.lost_slots
        if table.pts is not None and table.lost:  # known by pts, but the times are unusable
            lost_slots = np.searchsorted(table.pts, table.lost_pts) + np.arange(table.lost)
            slots = np.arange(count) + np.searchsorted(table.lost_pts, table.pts)
        return (
            np.asarray(slots, np.float64) / rate,
            TIMESTAMPS_DERIVED,
            rate,
            np.asarray(lost_slots, np.float64) / rate,
        )

    # ----------------------------------------------------------------------------- metadata
    @property
    def timestamps_from_container(self) -> bool:
        """True when :meth:`frame_timestamps` come from the container, False when derived."""
        return self.info.timestamps_source == TIMESTAMPS_CONTAINER

    def frame_timestamps(self) -> np.ndarray:
        """Start time of every frame in seconds from the first frame, float64 (num_frames,).

        The frames' presentation times, or ``slot / fps`` where those are not usable (see
        :attr:`VideoInfo.timestamps_source`); lost frames leave a gap.
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
            VideoDecodeError: a decode error with ``on_damage="fail"`` (the message names the
                path, frame count, fps, the first bad frame and the indices asked for); it can
                come after chunks were yielded, so keep a video's chunks until the iteration
                ends.
            FrameTableMismatch: the decoder's output disagrees with the container's table, or
                shows damage; reopen with ``index="decode"`` (see :func:`read_frames`).
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        indices = np.sort(self.clamp(frame_indices))
        if len(indices) == 0:
            return
        yield from chunked(
            indices, self._unique_frames(np.unique(indices)), chunk_size, self._output_shape()
        )

    def seek_for(self, frame_indices: np.ndarray) -> bool:
        """True when :meth:`iter_frames` seeks for these sorted indices instead of decoding all.

        Seeking needs frames known by pts, or an MPEG-4 Part 2 AVI
        (:attr:`FrameTable.seek_points`), and keyframes between the wanted frames; it is chosen
        when it decodes at most :data:`SEEK_MAX_COST_SHARE` of the frames the sequential path
        decodes (up to the last wanted frame).
        """
        table = self._table
        by_pts = table.pts is not None and not self._is_avi
        by_order = table.seek_points is not None and self._release_delay is not None
        if not (by_pts or by_order) or len(table.keyframes) < 2:
            return False
        if len(frame_indices) == 0:
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
            seek = self._seek_frames if self._table.pts is not None else self._seek_in_order
            try:
                for index, image in seek(wanted):
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
        image = upright(self._rgb(frame), self.rotation)
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

    def _clean(self, container, stream, state=None) -> Iterator[tuple[int, object]]:
        """:func:`frame_table.clean_frames`, for a reader: damage the table knows is skipped;
        damage it does not know fails the video (``on_damage="fail"``) or calls for a decode
        pass (:class:`FrameTableMismatch`)."""
        losses = frame_table.Losses() if self._table.decoded else None
        try:
            yield from frame_table.clean_frames(container, stream, losses, state)
        except DecodeFailure as failure:
            raise _Damage(failure.reason) from failure

    def _position(self, frame, output: int) -> int:
        """The table position of a clean frame (by pts, or its output position), or -1 for a
        frame the table lists as lost; raises :class:`FrameTableMismatch` for one it lacks."""
        pts = self._table.pts
        if pts is None:
            return output
        found = int(np.searchsorted(pts, frame.pts)) if frame.pts is not None else len(pts)
        if found < len(pts) and pts[found] == frame.pts:
            return found
        lost = self._table.lost_pts
        at = int(np.searchsorted(lost, frame.pts)) if frame.pts is not None else len(lost)
        if at < len(lost) and lost[at] == frame.pts:
            return -1
        raise self._mismatch(found, f"a frame with pts {frame.pts}, which the table lacks")

    def _sequential_frames(self, wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) of each unique wanted index: decoded from the start and checked.

        Frames may come out of the decoder in any order (known by pts); a wanted frame is
        handed out once every frame before it has come out.
        """
        limit = self._num_frames
        seen = np.zeros(limit, bool)
        low = 0  # every frame before this one has come out
        pending: dict[int, np.ndarray] = {}
        next_wanted = 0
        wanted_set = set(wanted.tolist())
        with self._open() as (container, stream):
            try:
                for output, (_, frame) in enumerate(self._clean(container, stream)):
                    position = self._position(frame, output)
                    if position < 0:
                        continue
                    if position >= limit or seen[position]:
                        raise self._mismatch(position, f"an extra frame (pts {frame.pts})")
                    seen[position] = True
                    if position in wanted_set:
                        pending[position] = self._convert(frame)
                    while low < limit and seen[low]:
                        low += 1
                    while next_wanted < len(wanted) and wanted[next_wanted] < low:
                        index = int(wanted[next_wanted])
                        yield index, pending.pop(index)
                        next_wanted += 1
                    if next_wanted == len(wanted) and low < limit:
                        return  # the frames after the last one wanted need not decode
                    if position > low + REORDER_LIMIT:
                        self._raise_gap(low, wanted)
            except _Damage as damage:
                if self._strict:
                    raise VideoDecodeError(
                        self._error_text(low, damage.reason, wanted), decodable_frames=low
                    ) from damage
                raise self._mismatch(low, f"damage ({damage.reason})") from damage
        if low < limit:
            self._raise_gap(low, wanted)

    def _seek_frames(self, wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) of each wanted index, seeking to the keyframe before each.

        Frames are recognised by pts. Anything unexpected (a seek that lands elsewhere, a pts
        not in the table, damage) raises :class:`_SeekSurprise`, and the caller decodes the
        remaining frames sequentially, where every frame is checked.
        """
        table = self._table
        assert table.pts is not None
        pts = table.pts
        with self._open() as (container, stream):
            frames = None
            seen: set[int] = set()
            low = 0
            pending: dict[int, np.ndarray] = {}
            wanted_set = set(wanted.tolist())
            for target in wanted.tolist():
                keyframe = int(
                    table.keyframes[np.searchsorted(table.keyframes, target, "right") - 1]
                )
                if target in pending:
                    yield target, pending.pop(target)
                    continue
                if frames is None or keyframe > low or target < low:
                    with _surprise_on_error():
                        container.seek(int(pts[keyframe]), stream=stream, backward=True)
                    frames = self._clean(container, stream)
                    seen, low, pending = set(), keyframe, {}
                try:
                    for _, frame in frames:
                        try:
                            position = self._position(frame, -1)
                        except FrameTableMismatch as err:
                            raise _SeekSurprise(str(err)) from err
                        if position < low:
                            continue  # lost, or before the keyframe (an open GOP's leading frames)
                        if not seen and position != low:
                            raise _SeekSurprise(f"the seek landed on frame {position}, not {low}")
                        seen.add(position)
                        if position in wanted_set:
                            pending[position] = self._convert(frame)
                        while low in seen:
                            low += 1
                        if target < low:
                            yield target, pending.pop(target)
                            break
                        if position > target + REORDER_LIMIT:
                            raise _SeekSurprise(f"frame {target} did not come out")
                    else:
                        raise _SeekSurprise(f"the decoder ended before frame {target}")
                except _Damage as damage:
                    raise _SeekSurprise(damage.reason) from damage

    def _seek_in_order(self, wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) of each wanted index of an MPEG-4 AVI, seeking to the I-VOP packet
        before each (:attr:`FrameTable.seek_points`) once the decoder took the first packet
        (:meth:`_prime`). Frame ``i`` comes from the packet with dts ``i`` plus the delay seen
        on frame 0; the first frame after a seek must be the keyframe, and each frame must come
        from its packet, else :class:`_SeekSurprise`."""
        table, delay = self._table, self._release_delay
        assert table.seek_points is not None and delay is not None
        state = frame_table.DecodeState()
        with self._open() as (container, stream):
            self._prime(container, stream)
            frames, position, landing = None, -1, False
            for target in wanted.tolist():
                point = int(np.searchsorted(table.keyframes, target, "right") - 1)
                keyframe = int(table.keyframes[point])
                if frames is None or keyframe > position + 1 or target <= position:
                    with _surprise_on_error():
                        container.seek(int(table.seek_points[point]), stream=stream, backward=True)
                    frames = self._clean(container, stream, state)
                    position, landing = keyframe - 1, True
                try:
                    for _, frame in frames:
                        if landing and not frame.key_frame:
                            raise _SeekSurprise(f"the seek for frame {keyframe} missed its I-frame")
                        landing, position = False, position + 1
                        released = state.released_by
                        if released is None:  # the flush releases the last frame
                            expected = position == self._num_frames - 1
                        else:
                            expected = released - delay == position
                        if not expected:
                            raise _SeekSurprise(f"frame {position} from packet {released}")
                        if position == target:
                            yield target, self._convert(frame)
                            break
                    else:
                        raise _SeekSurprise(f"the decoder ended before frame {target}")
                except _Damage as damage:
                    raise _SeekSurprise(damage.reason) from damage

    @staticmethod
    def _prime(container, stream) -> None:
        """Let the decoder take the first packet: a packed stream says so there, and a decoder
        that never saw it drops every P-frame after a seek."""
        with _surprise_on_error():
            next(container.demux(stream)).decode()

    def _raise_gap(self, position: int, wanted: np.ndarray) -> None:
        """The decoder never output frame ``position``: damage the table did not know."""
        reason = "the decoder skipped this frame (a damaged packet)"
        if self._strict and self._table.pts is not None:  # AVI: the decode pass tells
            raise VideoDecodeError(
                self._error_text(position, reason, wanted), decodable_frames=position
            )
        raise self._mismatch(position, reason)

    def _mismatch(self, position: int, what: str) -> FrameTableMismatch:
        return FrameTableMismatch(
            f"{self.path}: the decoder's output disagrees with the container's frame table at "
            f"frame {position}: {what}; reopen with index='decode'",
            decodable_frames=position,
        )

    def _error_text(self, position: int, reason: str, wanted: np.ndarray | None = None) -> str:
        count = self._table.frames_in_file
        rate = self._rate if math.isfinite(self._rate) else float("nan")
        asked = f"; frames asked for: {short_indices(wanted)}" if wanted is not None else ""
        return (
            f"cannot decode {self.path} exactly ({count} frames at {rate:.3f} fps): frame "
            f"{position} (about {position / rate if rate > 0 else float('nan'):.2f} s) failed: "
            f"{reason}{asked}. Frames 0-{position - 1} decode; on_damage='keep' (the default) "
            "keeps every clean frame and records what was lost"
            if position > 0
            else f"cannot decode {self.path} ({count} frames at {rate:.3f} fps): frame 0 "
            f"failed: {reason}{asked}"
        )

    def __repr__(self) -> str:
        return f"VideoReader({self.path!r}, num_frames={self._num_frames}, fps={self._fps:.3f})"


# ------------------------------------------------------------------------- decoding helpers
class _SeekSurprise(Exception):
    """The seek path met something it did not expect; the sequential path takes over."""


@contextlib.contextmanager
def _surprise_on_error():
    """A seek that raises is a :class:`_SeekSurprise` (the sequential path takes over)."""
    try:
        yield
    except Exception as err:
        raise _SeekSurprise(first_line(err)) from err


class _Damage(Exception):
    """The decoder lost a frame the table did not know was lost."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_frames(
    path: str | Path,
    choose: Callable[[VideoInfo, np.ndarray], np.ndarray],
    chunk_size: int = 32,
    **reader_options,
) -> tuple[VideoInfo, np.ndarray, np.ndarray, torch.Tensor]:
    """Open a video, choose frames from its info and timestamps, decode them (all in memory).

    A :class:`FrameTableMismatch` (a wrong container table, or damage) reopens the video with
    ``index="decode"`` once, so callers never see it; use this for a few frames of a video
    (prediction, overlays), and :class:`video_eleatt.video.pool.DecodePool` for many.

    Args:
        path: the video file.
        choose: ``(info, timestamps) -> frame indices`` (e.g. a sampling config's
            ``sample_frame_indices``); indices are clamped and sorted.
        chunk_size: frames per decoded chunk.
        **reader_options: ``width``, ``height``, ``num_threads``, ``on_damage``,
            ``max_lost_fraction`` of :class:`VideoReader`.

    Returns:
        ``(info, frame_indices, timestamps, frames)``: int64 (K,) sorted indices, float64
        (K,) their start times in seconds, uint8 (K, H, W, 3) upright RGB frames.

    Raises:
        VideoDecodeError: the file cannot be opened or decoded exactly.
    """
    index = "auto"
    while True:
        reader = VideoReader(path, index=index, **reader_options)
        timestamps = reader.frame_timestamps()
        frame_indices = np.sort(reader.clamp(choose(reader.info, timestamps)))
        try:
            chunks = [frames for _, frames in reader.iter_frames(frame_indices, chunk_size)]
        except FrameTableMismatch:
            if index == "decode":
                raise
            index = "decode"
            continue
        info = reader.info
        shape = (0, info.height, info.width, 3)
        frames = torch.cat(chunks) if chunks else torch.empty(shape, dtype=torch.uint8)
        return info, frame_indices, timestamps[frame_indices], frames
