"""The frame table of a video: its frames in output order, their pts, and the seek points.

:class:`~video_eleatt.video.decode.VideoReader` identifies every frame by its presentation
time (pts), checked against this table (steps 1 and 1b of :mod:`video_eleatt.video.decode`):

- :func:`container_table` reads it from the container's packets (demux only, no decoding):
  the packets' pts, sorted, are the frames in output order, and the keyframes are the seek
  points. It gives up (None) on a packet without a pts, a corrupt packet or a duplicate pts.
- :func:`decoded_table` decodes every frame once without converting it and records what the
  decoder really outputs, including where the first decode error (or a frame the decoder
  dropped without an error) ends the exact prefix.

:func:`decode_checked` is the one place frames come out of the decoder, for the table and the
reader alike: a decoder exception becomes a :class:`DecodeFailure` with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CORRUPT_FRAME = "the decoder flagged the frame corrupt (concealed errors)"


@dataclass(frozen=True)
class FrameTable:
    """The frames of a video in output order.

    Attributes:
        pts: int64 (N,) presentation times in the stream's time base, strictly increasing, or
            None when the decoder gives no usable times (then frames are known by position).
        keyframes: int64 sorted positions that a seek can start decoding from (always has 0).
        frames_in_file: frames the file holds (packets, or decoder outputs until an error).
        first_error: position and reason of the first decode error, if the decode pass hit one.
    """

    pts: np.ndarray | None
    keyframes: np.ndarray
    frames_in_file: int
    first_error: tuple[int, str] | None = None

    def __len__(self) -> int:
        return self.frames_in_file if self.first_error is None else self.first_error[0]


class DecodeFailure(Exception):
    """The decoder raised, or flagged a frame corrupt; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_checked(container, stream) -> Iterator:
    """``container.decode(stream)``, raising :class:`DecodeFailure` where the decoder raises."""
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except Exception as err:  # av.error.InvalidDataError and friends
            raise DecodeFailure(first_line(err)) from err
        yield frame


def container_table(container, stream) -> FrameTable | None:
    """Step 1: the frame table from the packets' pts (no decoding), or None if unusable."""
    pts, keyframe_pts = [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue  # the flush packet demux ends with; frames an edit list cuts off
            if packet.pts is None or packet.is_corrupt:
                return None
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframe_pts.append(packet.pts)
    except Exception:  # a demux error: let the decode pass find out what decodes
        return None
    if not pts:
        return None
    ordered = np.sort(np.asarray(pts, np.int64))
    if not strictly_increasing(ordered):
        return None
    keyframes = np.searchsorted(ordered, np.asarray(keyframe_pts, np.int64))
    keyframes = np.unique(np.concatenate([[0], keyframes])).astype(np.int64)
    return FrameTable(pts=ordered, keyframes=keyframes, frames_in_file=len(ordered))


def decoded_table(container, stream, path: str) -> FrameTable:
    """Step 1b: decode every frame of an open video once (no conversion) and record what
    comes out; ``path`` is the same file, whose packets are counted to find dropped frames."""
    pts: list[int | None] = []
    keyframes = [0]
    first_error = None
    try:
        for position, frame in enumerate(decode_checked(container, stream)):
            if frame.is_corrupt:
                raise DecodeFailure(CORRUPT_FRAME)
            pts.append(frame.pts)
            if frame.key_frame and position:
                keyframes.append(position)
    except DecodeFailure as failure:
        first_error = (len(pts), failure.reason)
    packets = packet_pts(path)
    usable = all(value is not None for value in pts) and strictly_increasing(pts)
    frames_in_file = max(len(packets), len(pts))
    if first_error is None and len(packets) > len(pts) > 0:
        # the decoder output fewer frames than the file has packets and raised nothing: it
        # dropped a frame. The frames after the first missing pts are trusted no further.
        shown = set(pts)
        missing = sorted(p for p in packets if p is not None and p not in shown)
        position = int(np.searchsorted(pts, missing[0])) if usable and missing else len(pts)
        first_error = (
            position,
            f"the decoder output {len(pts)} frames for {len(packets)} packets and "
            "dropped one here without an error",
        )
    return FrameTable(
        pts=np.asarray(pts, np.int64) if usable and pts else None,
        keyframes=np.asarray(keyframes, np.int64),
        frames_in_file=frames_in_file,
        first_error=first_error,
    )


def packet_pts(path: str) -> list[int | None]:
    """The pts of the video packets that are shown (not cut by an edit list), file order."""
    import av

    pts = []
    try:
        with av.open(path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size and not packet.is_discard:
                    pts.append(packet.pts)
    except Exception:  # a demux error: the packets before it are what the file has
        pass
    return pts


def strictly_increasing(values) -> bool:
    """Whether a sequence of pts rises at every step (one or no value counts as rising)."""
    values = np.asarray(values)
    return bool(len(values) < 2 or (np.diff(values) > 0).all())


def seek_cost(keyframes: np.ndarray, wanted: np.ndarray) -> int:
    """Frames decoded to reach the sorted unique ``wanted`` frames by seeking."""
    cost, position = 0, -1
    for target in wanted.tolist():
        keyframe = int(keyframes[np.searchsorted(keyframes, target, "right") - 1])
        start = keyframe if keyframe > position + 1 or target <= position else position + 1
        cost += target - start + 1
        position = target
    return cost


def first_line(err: BaseException) -> str:
    """The useful line of a decoder error, with its type."""
    text = str(err).strip() or type(err).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else text}"[:400]
