"""What a demo dataset is made of: its classes and the parameters of its videos.

Every class is a temporal pattern (``rise``, ``fall``, ``rise_fall``, ``fall_rise``) of one
attribute (a *family*: ``size``, ``hue`` or ``angle``) of one object; see
:mod:`video_eleatt.demo.render` for what the frames show and why a model that ignores frame
order cannot tell the classes of a family apart. :class:`SynthConfig` holds everything that
changes the generated videos; :mod:`video_eleatt.demo.synth` writes them.

>>> SynthConfig(videos_per_class=4).clips()[:2]  # (group, clip), 1-based
[(1, 1), (1, 2)]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

# class name -> (family, pattern). A literal table: the family says which attribute changes,
# the pattern in which order (see video_eleatt.demo.render).
CLASSES: dict[str, tuple[str, str]] = {
    "Grow": ("size", "rise"),
    "Shrink": ("size", "fall"),
    "GrowShrink": ("size", "rise_fall"),
    "ShrinkGrow": ("size", "fall_rise"),
    "HueForward": ("hue", "rise"),
    "HueBackward": ("hue", "fall"),
    "HueForwardBack": ("hue", "rise_fall"),
    "HueBackForward": ("hue", "fall_rise"),
    "RotateClockwise": ("angle", "rise"),
    "RotateAnticlockwise": ("angle", "fall"),
    "RotateClockwiseBack": ("angle", "rise_fall"),
    "RotateAnticlockwiseBack": ("angle", "fall_rise"),
}
# The demo's classes: the size and hue families (rotation is available, not used by default).
DEFAULT_CLASSES: tuple[str, ...] = tuple(
    name for name, (family, _) in CLASSES.items() if family in ("size", "hue")
)
PATTERNS = ("rise", "fall", "rise_fall", "fall_rise")
FAMILIES = ("size", "hue", "angle")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that changes the generated videos (recorded in ``demo_dataset.json``).

    Attributes:
        videos_per_class: clips per class; split into groups of ``clips_per_group``.
        seed: the draw; the same seed and parameters give the same videos.
        classes: class names from :data:`CLASSES`, in class-id order.
        width: frame width in pixels (even, for yuv420p).
        height: frame height in pixels (even).
        fps: frame rate of the files.
        duration_s: nominal clip length in seconds; each clip's length is drawn within
            ``duration_jitter`` (a fraction) of it.
        duration_jitter: relative spread of clip lengths.
        clips_per_group: clips sharing one scene (UCF101 has 4 to 7).
        test_fraction: share of groups (the lowest-numbered, as in UCF101 split 1) in the
            test list.
        crf: x264 constant rate factor (0 lossless, 18 visually lossless, 23 default).
    """

    videos_per_class: int = 80
    seed: int = 0
    classes: tuple[str, ...] = DEFAULT_CLASSES
    width: int = 112
    height: int = 112
    fps: int = 12
    duration_s: float = 3.0
    duration_jitter: float = 0.15
    clips_per_group: int = 4
    test_fraction: float = 0.3
    crf: int = 18

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        unknown = [name for name in self.classes if name not in CLASSES]
        if unknown:
            raise ValueError(f"unknown demo class(es) {unknown}; choose from {', '.join(CLASSES)}")
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise ValueError(f"classes {self.classes} must be distinct and at least one")
        if self.videos_per_class < 2:
            raise ValueError(
                f"videos_per_class={self.videos_per_class}: at least 2 are needed (one train "
                "and one test group)"
            )
        if self.width % 2 or self.height % 2 or min(self.width, self.height) < 32:
            raise ValueError(
                f"frame size {self.width}x{self.height}: width and height must be even and at "
                "least 32 (H.264 yuv420p)"
            )
        if self.fps < 1 or self.duration_s * self.fps * (1 - self.duration_jitter) < 8:
            raise ValueError(
                f"fps={self.fps}, duration_s={self.duration_s}: clips need at least 8 frames"
            )
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction={self.test_fraction}: expected in (0, 1)")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf={self.crf}: x264 takes 0 (lossless) to 51")

    @property
    def num_groups(self) -> int:
        """Groups per class (at least 2: one test, one train)."""
        return max(2, math.ceil(self.videos_per_class / self.clips_per_group))

    @property
    def test_groups(self) -> int:
        """How many of the lowest-numbered groups form the test list."""
        return min(self.num_groups - 1, max(1, round(self.test_fraction * self.num_groups)))

    def clips(self) -> list[tuple[int, int]]:
        """``(group, clip)`` numbers (1-based) of one class's videos, group-major."""
        per_group = [self.videos_per_class // self.num_groups] * self.num_groups
        for extra in range(self.videos_per_class % self.num_groups):
            per_group[-1 - extra] += 1  # the remainder goes to the (training) last groups
        return [(g + 1, c + 1) for g, count in enumerate(per_group) for c in range(count)]

    def to_dict(self) -> dict:
        """JSON-ready form (``classes`` as a list)."""
        data = asdict(self)
        data["classes"] = list(self.classes)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> SynthConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown demo dataset parameter(s) {sorted(unknown)}")
        return cls(**{**data, "classes": tuple(data.get("classes", DEFAULT_CLASSES))})
