"""What a decoded video is (:class:`VideoInfo`), how decoding fails, and the versions of the
decode path that caches and manifests record; :mod:`video_eleatt.video.decode` reads videos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Goes into every feature cache's identity: caches decoded before frame-exact decoding (decord's
# random access, container timestamps taken on trust) have another identity and are named stale.
# Unchanged by DECODE_REVISION 3: every file the revision-2 path accepted (all frames decoded,
# pts in presentation order) gives the same frames and timestamps now, so its cache stays valid.
DECODE_VERSION = "frame-exact/2"
# Goes into manifest rows: 3 accepts packed B-frames, decoders that output frames out of
# presentation order, and damaged files (their clean frames). Rows that failed, or kept only a
# partial prefix, under an older revision are decoded again by the next ``extract``.
DECODE_REVISION = 3

# A video that loses more than this share of its frames is refused by default: "mostly
# damaged". Below it, more than half of the clip's time is still there for sampling to see.
MAX_LOST_FRACTION = 0.5

TIMESTAMPS_CONTAINER = "container"
TIMESTAMPS_DERIVED = "derived"
ON_DAMAGE = ("keep", "fail")


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded exactly; the message names the file and frames.

    Attributes:
        decodable_frames: frames before the first loss, when one was located, else None.
    """

    def __init__(self, message: str, decodable_frames: int | None = None) -> None:
        super().__init__(message)
        self.decodable_frames = decodable_frames


class FrameTableMismatch(VideoDecodeError):
    """The decoder's output disagrees with the container's frame table, or shows damage the
    table could not know (not a failure of the video).

    The caller reopens the video with ``index="decode"``, which builds the table from what the
    decoder outputs; frames already returned must be dropped.
    """


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, as decoded.

    Attributes:
        path: the file, as given to :class:`VideoReader`.
        num_frames: clean frames (the decodable range is ``[0, num_frames - 1]``).
        fps: average frame rate, frames per second.
        duration: seconds from the first frame's start to the last frame's end.
        width: width of the frames returned (upright, after resizing), pixels.
        height: height of the frames returned, pixels.
        timestamps_source: "container" (the frames' presentation times) or "derived"
            (``slot / fps``: AVI, or missing, non-increasing or absurd container times).
        rotation: the display rotation stored in the file, in the convention of the
            ``rotate`` tag (degrees clockwise: 0, 90, 180, 270); frames are returned with it
            applied, upright.
        lost_frames: frames lost to damage (0 for an intact file); they are not among the
            ``num_frames`` and their times show as gaps in the timestamps.
        frames_in_file: clean and lost frames, when some were lost, else None.
        lost_first_s: start time of the first lost frame (seconds, as the timestamps), or None.
        lost_last_s: start time of the last lost frame, or None.
        damage: why the first frame was lost (the decoder's error, a corrupt flag), or None.
    """

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    timestamps_source: str = TIMESTAMPS_CONTAINER
    rotation: int = 0
    lost_frames: int = 0
    frames_in_file: int | None = None
    lost_first_s: float | None = None
    lost_last_s: float | None = None
    damage: str | None = None

    @property
    def damaged(self) -> bool:
        """True when frames were lost to damage."""
        return self.lost_frames > 0


def damage_text(info: VideoInfo) -> str:
    """What a damaged video lost, for messages: count and times."""
    if not info.lost_frames:
        return "no frame lost"
    return (
        f"{info.lost_frames} of {info.frames_in_file} frames lost between "
        f"{info.lost_first_s:.2f} s and {info.lost_last_s:.2f} s (first: {info.damage})"
    )


def short_indices(indices: np.ndarray | None) -> str:
    """Frame indices for a message: all of up to 8, else the first 4 and the last 2."""
    values = [] if indices is None else np.asarray(indices).tolist()
    if len(values) <= 8:
        return str(values)
    return f"[{', '.join(map(str, values[:4]))}, ..., {', '.join(map(str, values[-2:]))}]"
