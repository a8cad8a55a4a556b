"""Which frames of a video to decode: by time, never by re-encoding.

Every mode picks source frames by their presentation time. The frame chosen for a time ``s``
(seconds from the first frame) is the one on screen at ``s``: the latest frame whose start time
is ``<= s`` (a 1%-of-a-frame tolerance absorbs decord's float32 timestamps). Frame start times
come from the container (``VideoReader.frame_timestamps()``); without them (or when they are
not usable), frame ``i`` starts at ``i / fps``, the average frame rate.

The video spans ``[0, D)`` with ``D = t[-1] - t[0] + 1 / fps`` (the last frame is shown for one
average frame interval).

Modes:

- ``"all"``: every frame, ``0 .. num_frames - 1``.
- ``"fps"``: target rate ``fps``: times ``k / fps`` for ``k = 0, 1, ...`` while ``< D``. Above the
  video's own rate, frames repeat (time stays uniform); for a variable-frame-rate video bursts
  are thinned and a long frame is not repeated while free frames remain (see below).
- ``"uniform"``: ``num_frames`` times at the centres of equal bins, ``(k + 0.5) * D / N``.
- ``"segments"``: TSN at extraction: ``num_segments`` equal segments, the centre of each; the
  same times as ``"uniform"`` (TSN's random offset within a segment is a training-time
  augmentation, and features are extracted once).
- ``max_frames`` (any mode): when more frames were picked, keep ``max_frames`` of them at the
  centres of equal bins of the picked list.

Results are sorted int64 indices in ``[0, num_frames - 1]``; the same inputs always give the
same indices. An index repeats only when the video's length forces it (more samples than
frames, e.g. ``fps`` above the video's rate): when two sample times fall on one frame (a pause
in a variable-frame-rate video), the later one moves to the next free frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

SamplingMode = Literal["all", "fps", "uniform", "segments"]
SAMPLING_MODES: tuple[str, ...] = ("all", "fps", "uniform", "segments")

# Which field each mode needs; the others are ignored by that mode.
_REQUIRED_FIELD: dict[str, str | None] = {
    "all": None,
    "fps": "fps",
    "uniform": "num_frames",
    "segments": "num_segments",
}


@dataclass
class SamplingConfig:
    """How to choose the frames of each video.

    Attributes:
        mode: "all", "fps", "uniform" or "segments" (see the module docstring).
        fps: target frames per second, for mode "fps".
        num_frames: frames per video, for mode "uniform".
        num_segments: segments per video (one frame each), for mode "segments".
        max_frames: optional cap on frames per video in any mode (uniform subsampling).

    >>> SamplingConfig(mode="fps", fps=4.0, max_frames=64).to_dict()
    {'mode': 'fps', 'fps': 4.0, 'max_frames': 64}
    """

    mode: SamplingMode = "fps"
    fps: float | None = None
    num_frames: int | None = None
    num_segments: int | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the bad field, its value and the fix."""
        if self.mode not in _REQUIRED_FIELD:
            raise ValueError(
                f"sampling mode {self.mode!r} is not known; choose one of {SAMPLING_MODES}"
            )
        required = _REQUIRED_FIELD[self.mode]
        if required is not None and getattr(self, required) is None:
            example = {"fps": "fps: 4.0", "num_frames": "num_frames: 16"}.get(
                required, "num_segments: 8"
            )
            raise ValueError(
                f"sampling mode {self.mode!r} needs {required!r}, which is not set; "
                f"add e.g. `{example}` to the sampling config"
            )
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"sampling fps must be a positive number of frames/s, got {self.fps}")
        for name in ("num_frames", "num_segments", "max_frames"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"sampling {name} must be an integer >= 1, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields that change the result for this mode (a canonical form for hashing)."""
        out: dict[str, Any] = {"mode": self.mode}
        required = _REQUIRED_FIELD[self.mode]
        if required is not None:
            out[required] = getattr(self, required)
        if self.max_frames is not None:
            out["max_frames"] = self.max_frames
        return out


def usable_timestamps(timestamps: np.ndarray | None, num_frames: int) -> bool:
    """True when ``timestamps`` are num_frames finite, non-decreasing, not all equal times."""
    if timestamps is None:
        return False
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if timestamps.shape != (num_frames,) or not np.isfinite(timestamps).all():
        return False
    if num_frames > 1:
        steps = np.diff(timestamps)
        return bool((steps >= 0).all() and timestamps[-1] > timestamps[0])
    return True


def start_tolerance(fps: float, starts):
    """How far after a sample time a frame may start and still count as on screen at it:
    1 % of a frame interval, plus float32 rounding of large times (seconds, like ``starts``)."""
    return 0.01 / fps + 2.4e-7 * np.abs(starts)


def frames_at_times(times: np.ndarray, starts: np.ndarray, fps: float) -> np.ndarray:
    """For each time, the frame on screen: the latest frame with start ``<= time``.

    Args:
        times: float64 (K,) seconds from the first frame's start.
        starts: float64 (num_frames,) frame start times in seconds from the first frame,
            non-decreasing, ``starts[0] == 0``.
        fps: average frame rate; sets the tolerance (1% of a frame interval, plus float32
            rounding of large times) for start times that land a hair after a sample time.

    Returns:
        int64 (K,) frame indices in ``[0, num_frames - 1]``.
    """
    positions = np.searchsorted(starts - start_tolerance(fps, starts), times, side="right") - 1
    return np.clip(positions, 0, len(starts) - 1).astype(np.int64)


def _bin_centres(count: int, total: float) -> np.ndarray:
    return (np.arange(count, dtype=np.float64) + 0.5) * (total / count)


def sample_frame_indices(
    num_frames: int,
    fps: float,
    config: SamplingConfig,
    timestamps: np.ndarray | None = None,
) -> np.ndarray:
    """The frames of a video to decode, chosen by time.

    Args:
        num_frames: frames in the video (decodable range ``[0, num_frames - 1]``).
        fps: the video's average frame rate (frames per second).
        config: the sampling mode and its parameters.
        timestamps: float64 (num_frames,) frame start times in seconds (e.g.
            ``VideoReader.frame_timestamps()``); None, or unusable values (not finite,
            decreasing, all equal), fall back to ``i / fps``.

    Returns:
        int64 (K,) sorted frame indices in ``[0, num_frames - 1]``, repeats allowed.

    Raises:
        ValueError: num_frames < 1, a non-positive fps where time is needed, or timestamps of
            the wrong length.

    >>> sample_frame_indices(30, 10.0, SamplingConfig(mode="fps", fps=2.0)).tolist()
    [0, 5, 10, 15, 20, 25]
    >>> sample_frame_indices(30, 10.0, SamplingConfig(mode="uniform", num_frames=3)).tolist()
    [5, 15, 25]
    """
    config.validate()
    if num_frames < 1:
        raise ValueError(f"cannot sample frames from a video with {num_frames} frames")
    if timestamps is not None and np.shape(timestamps) != (num_frames,):
        raise ValueError(
            f"timestamps has shape {np.shape(timestamps)}, expected ({num_frames},): one start "
            "time per frame"
        )
    if config.mode == "all":
        indices = np.arange(num_frames, dtype=np.int64)
    else:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(
                f"the video's fps is {fps}; sampling mode {config.mode!r} needs a positive frame "
                "rate (re-mux the video with a frame rate, or use mode 'all')"
            )
        if usable_timestamps(timestamps, num_frames):
            starts = np.asarray(timestamps, dtype=np.float64)
            starts = starts - starts[0]
        else:
            starts = np.arange(num_frames, dtype=np.float64) / fps
        span = float(starts[-1]) + 1.0 / fps  # seconds covered by the video
        if config.mode == "fps":
            # times k / fps < span; a sample time within the timestamp tolerance of the end is
            # rounding (float32 timestamps), not another frame
            tolerance = 0.01 / fps + 2.4e-7 * span
            count = max(1, math.ceil((span - tolerance) * config.fps))
            times = np.arange(count, dtype=np.float64) / config.fps
        else:
            count = config.num_frames if config.mode == "uniform" else config.num_segments
            times = _bin_centres(int(count), span)
        indices = frames_at_times(times, starts, fps)
    if config.max_frames is not None and len(indices) > config.max_frames:
        keep = np.floor(_bin_centres(config.max_frames, len(indices))).astype(np.int64)
        indices = indices[keep]
    return _distinct_when_possible(np.sort(indices), num_frames)


def _distinct_when_possible(indices: np.ndarray, num_frames: int) -> np.ndarray:
    """Sorted indices with no frame used more often than the video's length forces.

    Sampling by time picks the frame on screen, so two sample times inside one long frame (a
    pause in a variable-frame-rate video) pick it twice. Only the length may force a repeat:
    with K samples of N frames no frame is used more than ``ceil(K / N)`` times (once, when
    K <= N). An excess use moves to the next frame (and, at the end, back to the previous one),
    keeping the order; where time already spreads the samples (``fps`` above a constant rate
    repeats each frame evenly) nothing moves.
    """
    count = len(indices)
    if count < 2 or bool((np.diff(indices) > 0).all()):
        return indices
    cap = -(-count // num_frames)  # the most uses of one frame that the length forces
    out = indices.tolist()
    uses = 1
    for j in range(1, count):  # forward: push excess uses to later frames
        value = max(out[j], out[j - 1])
        if value == out[j - 1]:
            if uses == cap:
                value, uses = value + 1, 1
            else:
                uses += 1
        else:
            uses = 1
        out[j] = value
    out[-1] = min(out[-1], num_frames - 1)
    uses = 1
    for j in range(count - 2, -1, -1):  # backward: pull what passed the end back inside it
        value = min(out[j], out[j + 1])
        if value == out[j + 1]:
            if uses == cap:
                value, uses = value - 1, 1
            else:
                uses += 1
        else:
            uses = 1
        out[j] = value
    return np.asarray(out, dtype=np.int64)
