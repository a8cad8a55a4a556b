"""The demo dataset: short H.264 videos of shapes whose class is only visible in time.

Every class is a *temporal pattern* of one attribute of one object: its size, its hue or its
angle. Within a family of classes (one attribute), the clips of the four classes drawn with
the same nuisance show exactly the same object states (attribute and position), only in a
different order:

=============  ===========================  ===================================================
pattern        order of the attribute       classes (size / hue / angle family)
=============  ===========================  ===================================================
``rise``       low -> high                  ``Grow``, ``HueForward``, ``RotateClockwise``
``fall``       high -> low (time reverse)   ``Shrink``, ``HueBackward``, ``RotateAnticlockwise``
``rise_fall``  low -> high -> low           ``GrowShrink``, ``HueForwardBack``, ...
``fall_rise``  high -> low -> high          ``ShrinkGrow``, ``HueBackForward``, ...
=============  ===========================  ===================================================

So the frames of a video, shuffled or averaged, tell its family but not its class: a model
that ignores frame order can be right at most one time in four, a recurrent model can be
right every time. ``fall`` is literally the ``rise`` clip played backwards (distractors and
noise included); ``rise_fall`` and ``fall_rise`` show the ``rise`` clip's object states
re-ordered (every other state on the way up, the rest on the way down), while distractors
and noise keep to real time. The default classes are the size and hue families (8 classes);
the angle family is available but harder to read from randomly initialised CNN features.

Nuisance, drawn per *group* (as UCF101's groups share actor and background) and shared by
all classes, so the test groups' scenes never appear in training: background colours,
gradient and texture; the number (0-3), shapes, colours and sizes of distractor objects.
Drawn per clip: the object's shape, colour, size range, position and drift, the attribute's
range and start, the timing (still frames before and after the change), the clip's length
(within 15%), the distractors' paths and spins, and the pixel noise. Clip ``cYY`` of group
``gXX`` uses the same draw in every class, which makes the classes of a family exact
controls of each other. The object is bright and saturated on a darker, muted background:
with untrained (random-init) CNN features its area and colour must show through the
global average pooling.

>>> config = SynthConfig(videos_per_class=4)
>>> frames = render_video("Grow", config, group=1, clip=1)  # (T, H, W, 3) uint8
>>> result = generate_dataset("data/demo/motion", config)  # doctest: +SKIP
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path

import numpy as np

GENERATOR_VERSION = 1
DEFAULT_ROOT = "data/demo/motion"
INFO_FILE = "demo_dataset.json"
VIDEO_DIR = "UCF-101"
LIST_DIR = "ucfTrainTestlist"

# class name -> (family, pattern). A literal table: the family says which attribute changes,
# the pattern in which order (see the module docstring).
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
# Shapes of the main object per family: rotation needs shapes whose angle is visible.
SHAPES = ("circle", "square", "triangle", "hexagon", "cross", "arrow")
ROTATING_SHAPES = ("triangle", "arrow", "cross", "square")


class DemoDataError(RuntimeError):
    """The demo dataset cannot be written at the requested place or with these parameters."""


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


def video_rel_path(class_name: str, group: int, clip: int) -> str:
    """Path of a clip relative to the dataset root, UCF101 style."""
    return f"{VIDEO_DIR}/{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.mp4"


# ----------------------------------------------------------------------------------------
# Drawing the nuisance


@dataclass
class _Shape:
    kind: str
    color: np.ndarray  # (3,) float RGB in [0, 1]
    radius: float  # pixels (circumradius)
    angle: float  # radians


@dataclass
class _Scene:
    """Per group: background and distractor appearance."""

    background: np.ndarray  # (H, W, 3) float32 in [0, 1]
    distractors: list[_Shape] = field(default_factory=list)


@dataclass
class _Clip:
    """Per clip (shared by all classes): everything else."""

    num_frames: int
    hold_start: int
    hold_end: int
    shape: str
    color_hsv: tuple[float, float, float]
    radius: float  # size and angle families
    radius_range: tuple[float, float]  # size family
    hue_arc: float  # turns, hue family
    angle_start: float  # radians
    angle_arc: float  # radians, angle family
    center: np.ndarray  # (2,) x, y pixels at mid-clip
    drift: np.ndarray  # (2,) pixels over the whole clip
    distractor_starts: np.ndarray  # (K, 2)
    distractor_velocities: np.ndarray  # (K, 2) pixels per frame
    distractor_spins: np.ndarray  # (K,) radians per frame
    noise_sigma: float  # in [0, 1] units


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a small (h, w) grid to (height, width)."""
    rows = np.linspace(0, grid.shape[0] - 1, height)
    cols = np.linspace(0, grid.shape[1] - 1, width)
    across = np.stack([np.interp(cols, np.arange(grid.shape[1]), row) for row in grid])
    return np.stack([np.interp(rows, np.arange(grid.shape[0]), col) for col in across.T]).T


def _draw_scene(config: SynthConfig, group: int) -> _Scene:
    rng = np.random.default_rng([config.seed, 1, group])
    height, width = config.height, config.width
    # A muted, darker background and a bright saturated object: with random-init CNN
    # features the object's area must show through its colour (see the module docstring).
    hue = rng.random()
    color_a = _hsv(hue, rng.uniform(0.0, 0.35), rng.uniform(0.08, 0.45))
    color_b = _hsv(hue + rng.uniform(-0.2, 0.2), rng.uniform(0.0, 0.35), rng.uniform(0.08, 0.45))
    direction = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (xs - width / 2) * math.cos(direction) + (ys - height / 2) * math.sin(direction)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    background = color_a + (color_b - color_a) * ramp[..., None]
    texture = _upsample(rng.uniform(-1, 1, size=(6, 6)), height, width)
    background = background + rng.uniform(0.02, 0.08) * texture[..., None]
    size = min(height, width)
    distractors = [
        _Shape(
            kind=str(rng.choice(SHAPES)),
            color=_hsv(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.8)),
            radius=rng.uniform(0.03, 0.07) * size,
            angle=rng.uniform(0, 2 * math.pi),
        )
        for _ in range(int(rng.integers(0, 4)))
    ]
    return _Scene(np.clip(background, 0, 1).astype(np.float32), distractors)


def _draw_clip(config: SynthConfig, group: int, clip: int, scene: _Scene) -> _Clip:
    rng = np.random.default_rng([config.seed, 2, group, clip])
    size = min(config.height, config.width)
    nominal = config.duration_s * config.fps
    num_frames = round(
        nominal * rng.uniform(1 - config.duration_jitter, 1 + config.duration_jitter)
    )
    # Still frames before and after the change: the change takes 60-100% of the clip.
    hold_start = int(rng.integers(0, int(0.2 * num_frames) + 1))
    hold_end = int(rng.integers(0, int(0.2 * num_frames) + 1))
    background_mean = scene.background.reshape(-1, 3).mean(axis=0)
    for _ in range(100):  # an object colour that stands out from the background
        color_hsv = (float(rng.random()), rng.uniform(0.6, 1.0), rng.uniform(0.85, 1.0))
        if np.linalg.norm(_hsv(*color_hsv) - background_mean) > 0.3:
            break
    radius_range = (rng.uniform(0.06, 0.1) * size, rng.uniform(0.24, 0.3) * size)
    radius = rng.uniform(0.16, 0.26) * size
    drift = rng.uniform(-0.08, 0.08, size=2) * size
    # Away from the borders, which a backbone's centre crop may cut.
    margin = max(radius_range[1], radius) + 0.08 * size + np.abs(drift) / 2
    center = np.array(
        [
            rng.uniform(margin[0], config.width - margin[0]),
            rng.uniform(margin[1], config.height - margin[1]),
        ]
    )
    count = len(scene.distractors)
    speed = rng.uniform(0.0, 1.5, size=count)
    heading = rng.uniform(0, 2 * math.pi, size=count)
    return _Clip(
        num_frames=num_frames,
        hold_start=hold_start,
        hold_end=hold_end,
        shape=str(rng.choice(SHAPES)),
        color_hsv=color_hsv,
        radius=radius,
        radius_range=radius_range,
        hue_arc=rng.uniform(0.5, 0.8),
        angle_start=rng.uniform(0, 2 * math.pi),
        angle_arc=math.radians(rng.uniform(120, 200)),
        center=center,
        drift=drift,
        distractor_starts=rng.uniform(0, 1, size=(count, 2)) * [config.width, config.height],
        distractor_velocities=np.stack([np.cos(heading), np.sin(heading)], axis=-1)
        * speed[:, None],
        distractor_spins=rng.uniform(-0.05, 0.05, size=count),
        noise_sigma=rng.uniform(0.004, 0.025),
    )


# ----------------------------------------------------------------------------------------
# Rendering


def ramp_values(num_frames: int, hold_start: int, hold_end: int) -> np.ndarray:
    """The ``rise`` pattern: 0 for ``hold_start`` frames, linear to 1, 1 for ``hold_end``.

    Returns:
        (num_frames,) float64, non-decreasing, from 0 to 1.
    """
    steps = max(num_frames - hold_start - hold_end, 2)
    values = np.concatenate([np.zeros(hold_start), np.linspace(0.0, 1.0, steps), np.ones(hold_end)])
    return values[:num_frames]  # at least num_frames long: steps >= the frames left


def pattern_order(pattern: str, num_frames: int) -> np.ndarray:
    """Frame ``t`` of a pattern shows the ``rise`` value number ``order[t]``.

    ``rise_fall`` climbs through the even-numbered values and descends through the odd ones,
    so every pattern is a permutation of the same values.

    Returns:
        (num_frames,) int64, a permutation of ``range(num_frames)``.
    """
    frames = np.arange(num_frames)
    up_down = np.concatenate([frames[0::2], frames[1::2][::-1]])
    orders = {
        "rise": frames,
        "fall": frames[::-1].copy(),
        "rise_fall": up_down,
        "fall_rise": num_frames - 1 - up_down,
    }
    if pattern not in orders:
        raise ValueError(f"unknown pattern {pattern!r}; choose from {', '.join(orders)}")
    return orders[pattern]


def _polygon_sdf(px: np.ndarray, py: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Signed distance (approximate off the edges' normals) to a convex polygon.

    ``vertices`` (V, 2) counter-clockwise in image coordinates; negative inside.
    """
    distance = None
    for index in range(len(vertices)):
        x0, y0 = vertices[index]
        x1, y1 = vertices[(index + 1) % len(vertices)]
        nx, ny = y1 - y0, -(x1 - x0)
        norm = math.hypot(nx, ny)
        edge = ((px - x0) * nx + (py - y0) * ny) / norm
        distance = edge if distance is None else np.maximum(distance, edge)
    return distance


def _regular(sides: int, radius: float, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * math.pi * np.arange(sides) / sides
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=-1)


def _orient(vertices: np.ndarray) -> np.ndarray:
    """Vertices in the winding order :func:`_polygon_sdf` expects (outward normals)."""
    x, y = vertices[:, 0], vertices[:, 1]
    area = np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    return vertices if area > 0 else vertices[::-1]


def shape_sdf(kind: str, dx: np.ndarray, dy: np.ndarray, radius, angle) -> np.ndarray:
    """Signed distance in pixels from points to a shape centred at the origin.

    Args:
        kind: one of :data:`SHAPES`.
        dx: x offsets from the centre, (T, H, W) or broadcastable.
        dy: y offsets (image rows, down is positive).
        radius: circumradius in pixels, a float or (T, 1, 1).
        angle: rotation in radians, clockwise on screen; a float or (T, 1, 1).

    Returns:
        Distances, negative inside, with the broadcast shape of the arguments.
    """
    radius = np.asarray(radius, dtype=np.float32)
    angle = np.asarray(angle, dtype=np.float32)
    cos, sin = np.cos(angle), np.sin(angle)
    # Rotate the points by -angle, i.e. the shape by +angle (y down: clockwise on screen).
    px = (dx * cos + dy * sin) / radius
    py = (-dx * sin + dy * cos) / radius
    if kind == "circle":
        unit = np.sqrt(px * px + py * py) - 1.0
    elif kind in ("triangle", "square", "hexagon"):
        sides = {"triangle": 3, "square": 4, "hexagon": 6}[kind]
        unit = _polygon_sdf(px, py, _orient(_regular(sides, 1.0, -math.pi / 2)))
    elif kind == "cross":
        arm, half = 1.0, 0.3
        horizontal = np.maximum(np.abs(px) - arm, np.abs(py) - half)
        vertical = np.maximum(np.abs(px) - half, np.abs(py) - arm)
        unit = np.minimum(horizontal, vertical)
    elif kind == "arrow":  # points up at angle 0
        head = _orient(np.array([[0.0, -1.0], [0.75, -0.1], [-0.75, -0.1]]))
        stem = _orient(np.array([[-0.28, -0.15], [0.28, -0.15], [0.28, 1.0], [-0.28, 1.0]]))
        unit = np.minimum(_polygon_sdf(px, py, head), _polygon_sdf(px, py, stem))
    else:
        raise ValueError(f"unknown shape {kind!r}; choose from {', '.join(SHAPES)}")
    return unit * radius


def _paint(frames: np.ndarray, sdf: np.ndarray, color: np.ndarray) -> None:
    """Alpha-composites a colour over ``frames`` (T, H, W, 3) where ``sdf`` (T, H, W) < 0."""
    alpha = np.clip(0.5 - sdf, 0.0, 1.0)[..., None]
    frames *= 1.0 - alpha
    frames += alpha * color


def _bounce(start: np.ndarray, velocity: np.ndarray, steps: np.ndarray, low, high) -> np.ndarray:
    """Positions (T, 2) of a point moving at constant velocity, reflected at the borders."""
    span = np.asarray(high) - np.asarray(low)
    raw = start[None, :] - low + steps[:, None] * velocity[None, :]
    folded = np.mod(raw, 2 * span)
    return low + np.where(folded > span, 2 * span - folded, folded)


@dataclass
class ClipDescription:
    """The ground truth of one clip, frame by frame (what :func:`render_video` draws).

    Attributes:
        class_name: the clip's class.
        family: ``"size"``, ``"hue"`` or ``"angle"``: the attribute that changes.
        pattern: ``"rise"``, ``"fall"``, ``"rise_fall"`` or ``"fall_rise"``.
        shape: the object's shape (one of :data:`SHAPES`).
        values: (T,) float64 in [0, 1], the pattern's value per frame.
        radius: (T,) the object's circumradius in pixels.
        hue: (T,) the object's hue in turns (unwrapped; the colour is ``hue % 1``).
        saturation: the object's HSV saturation.
        value: the object's HSV value.
        angle: (T,) the object's rotation in radians, clockwise on screen.
        center: (T, 2) the object's centre (x, y) in pixels.
    """

    class_name: str
    family: str
    pattern: str
    shape: str
    values: np.ndarray
    radius: np.ndarray
    hue: np.ndarray
    saturation: float
    value: float
    angle: np.ndarray
    center: np.ndarray

    @property
    def num_frames(self) -> int:
        """T, the clip's length in frames."""
        return len(self.values)

    def colors(self) -> np.ndarray:
        """(T, 3) float32 RGB in [0, 1] of the object per frame."""
        return np.stack([_hsv(h, self.saturation, self.value) for h in self.hue])

    def reversed(self) -> ClipDescription:
        """The same clip played backwards."""
        return ClipDescription(
            class_name=self.class_name,
            family=self.family,
            pattern=self.pattern,
            shape=self.shape,
            values=self.values[::-1].copy(),
            radius=self.radius[::-1].copy(),
            hue=self.hue[::-1].copy(),
            saturation=self.saturation,
            value=self.value,
            angle=self.angle[::-1].copy(),
            center=self.center[::-1].copy(),
        )


def _describe_in_order(class_name: str, order: np.ndarray, clip: _Clip) -> ClipDescription:
    """The object per frame when frame ``t`` shows ramp value number ``order[t]``."""
    family, pattern = CLASSES[class_name]
    num_frames = clip.num_frames
    values = ramp_values(num_frames, clip.hold_start, clip.hold_end)[order]  # (T,)
    hue, saturation, value = clip.color_hsv
    shape = clip.shape
    radius = np.full(num_frames, clip.radius)
    hues = np.full(num_frames, hue)
    angle = np.full(num_frames, clip.angle_start)
    if family == "size":
        low, high = clip.radius_range
        radius = low + (high - low) * values
    elif family == "hue":
        hues = hue + clip.hue_arc * values
    elif family == "angle":
        shape = ROTATING_SHAPES[SHAPES.index(clip.shape) % len(ROTATING_SHAPES)]
        angle = clip.angle_start + clip.angle_arc * values
    return ClipDescription(
        class_name=class_name,
        family=family,
        pattern=pattern,
        shape=shape,
        values=values,
        radius=radius,
        hue=hues,
        saturation=saturation,
        value=value,
        angle=angle,
        # The drift follows the pattern too, so that every pattern shows the same set of
        # object states (size or hue or angle, and position); only distractors and noise
        # keep to real time.
        center=clip.center + np.outer(order / max(num_frames - 1, 1) - 0.5, clip.drift),
    )


def _render(
    config: SynthConfig, scene: _Scene, clip: _Clip, target: ClipDescription, noise_key
) -> np.ndarray:
    """Frames (T, H, W, 3) uint8: background, distractors, the object as described, noise."""
    num_frames = target.num_frames
    steps = np.arange(num_frames, dtype=np.float32)
    frames = np.repeat(scene.background[None], num_frames, axis=0)  # (T, H, W, 3)
    ys, xs = np.mgrid[0 : config.height, 0 : config.width].astype(np.float32)
    xs, ys = xs[None] + 0.5, ys[None] + 0.5  # (1, H, W), pixel centres

    for index, distractor in enumerate(scene.distractors):
        low = np.full(2, distractor.radius)
        high = np.array([config.width, config.height]) - distractor.radius
        path = _bounce(
            clip.distractor_starts[index], clip.distractor_velocities[index], steps, low, high
        )  # (T, 2)
        angle = distractor.angle + clip.distractor_spins[index] * steps
        sdf = shape_sdf(
            distractor.kind,
            xs - path[:, 0, None, None],
            ys - path[:, 1, None, None],
            distractor.radius,
            angle[:, None, None],
        )
        _paint(frames, sdf, distractor.color)

    sdf = shape_sdf(
        target.shape,
        xs - target.center[:, 0, None, None].astype(np.float32),
        ys - target.center[:, 1, None, None].astype(np.float32),
        target.radius[:, None, None],
        target.angle[:, None, None],
    )  # (T, H, W)
    alpha = np.clip(0.5 - sdf, 0.0, 1.0)[..., None]
    frames = frames * (1.0 - alpha) + alpha * target.colors()[:, None, None, :]

    noise = np.random.default_rng(noise_key).standard_normal(frames.shape, dtype=np.float32)
    frames += clip.noise_sigma * noise
    return np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)


def _clip_setup(class_name: str, config: SynthConfig, group: int, clip: int):
    if class_name not in CLASSES:
        raise ValueError(f"unknown demo class {class_name!r}; choose from {', '.join(CLASSES)}")
    if group < 1 or clip < 1:
        raise ValueError(f"group={group}, clip={clip}: both are 1-based")
    scene = _draw_scene(config, group)
    draw = _draw_clip(config, group, clip, scene)
    pattern = CLASSES[class_name][1]
    # ``fall`` is the ``rise`` clip played backwards, distractors and noise included.
    order = pattern_order("rise" if pattern == "fall" else pattern, draw.num_frames)
    return scene, draw, _describe_in_order(class_name, order, draw), pattern == "fall"


def describe_clip(class_name: str, config: SynthConfig, group: int, clip: int) -> ClipDescription:
    """The object of a clip, frame by frame, without rendering it.

    Arguments as for :func:`render_video`.
    """
    _, _, target, backwards = _clip_setup(class_name, config, group, clip)
    return target.reversed() if backwards else target


def render_video(class_name: str, config: SynthConfig, group: int, clip: int) -> np.ndarray:
    """Renders one clip of the demo dataset.

    Args:
        class_name: a key of :data:`CLASSES` (need not be in ``config.classes``).
        config: dataset parameters (frame size, fps, seed, ...).
        group: 1-based group number; the scene is drawn from ``(seed, group)``.
        clip: 1-based clip number in the group; the rest of the nuisance from
            ``(seed, group, clip)``, the same for every class.

    Returns:
        (T, H, W, 3) uint8 RGB frames; T varies per clip around ``duration_s * fps``.
    """
    scene, draw, target, backwards = _clip_setup(class_name, config, group, clip)
    frames = _render(config, scene, draw, target, [config.seed, 3, group, clip])
    return frames[::-1].copy() if backwards else frames


# ----------------------------------------------------------------------------------------
# Encoding and the dataset folder


def write_video(path: str | Path, frames: np.ndarray, fps: int, crf: int = 18) -> None:
    """Encodes frames as H.264 (yuv420p) in an .mp4 file with PyAV.

    Args:
        path: output file.
        frames: (T, H, W, 3) uint8 RGB, H and W even.
        fps: frame rate (constant).
        crf: x264 constant rate factor.
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames {frames.shape} {frames.dtype}: expected (T, H, W, 3) uint8")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # One thread: videos are encoded in parallel processes instead. mbtree off: x264's
        # macroblock-tree lookahead made the same frames encode to different files from run
        # to run (it reads memory it did not write); without it the files are reproducible.
        stream.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "threads": "1",
            "x264-params": "mbtree=0",
        }
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            _zero_row_padding(frame)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _zero_row_padding(frame) -> None:
    """Zeroes the bytes past each row's end in a frame's planes (swscale leaves them
    uninitialised, and SIMD code may read them), so the encoder only ever sees our data."""
    for plane in frame.planes:
        if plane.line_size > plane.width:
            rows = np.frombuffer(memoryview(plane), dtype=np.uint8)
            rows = rows[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)
            rows[:, plane.width :] = 0


@dataclass
class DemoDataset:
    """What :func:`generate_dataset` found or wrote.

    Attributes:
        root: the dataset folder (UCF101 layout; read it with ``DatasetSpec("ucf101", root)``).
        created: False when a complete dataset with the same parameters was already there.
        config: its parameters.
        class_names: in class-id order.
        num_train: videos in ``trainlist01.txt``.
        num_test: videos in ``testlist01.txt``.
        seconds: time spent generating (0 when nothing was written).
    """

    root: Path
    created: bool
    config: SynthConfig
    class_names: list[str]
    num_train: int
    num_test: int
    seconds: float = 0.0


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_one(args: tuple[SynthConfig, str, int, int, str]) -> tuple[str, int, str, int]:
    config, class_name, group, clip, path = args
    frames = render_video(class_name, config, group, clip)
    write_video(path, frames, config.fps, config.crf)
    file = Path(path)
    return path, file.stat().st_size, _file_digest(file), len(frames)


def read_info(root: str | Path) -> dict | None:
    """The ``demo_dataset.json`` of a folder, or None if it has none (or it is unreadable)."""
    info_path = Path(root) / INFO_FILE
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(root: str | Path, info: dict | None = None) -> bool:
    """Whether every video and list recorded in the folder's ``demo_dataset.json`` is there,
    with the recorded size."""
    root = Path(root)
    info = read_info(root) if info is None else info
    if not info or "files" not in info:
        return False
    for rel_path, entry in info["files"].items():
        file = root / rel_path
        if not file.is_file() or file.stat().st_size != entry["bytes"]:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(root: Path) -> None:
    """Removes temporary folders of earlier runs for ``root`` whose process has ended."""
    for leftover in root.parent.glob(f".{root.name}.partial-*"):
        pid_text = leftover.name.rsplit("-", 1)[-1]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(leftover, ignore_errors=True)


def _config_differences(recorded: dict, config: SynthConfig) -> list[str]:
    wanted = config.to_dict()
    return [
        f"{key}={recorded.get(key)!r} (asked {value!r})"
        for key, value in wanted.items()
        if recorded.get(key) != value
    ]


def generate_dataset(
    root: str | Path = DEFAULT_ROOT,
    config: SynthConfig | None = None,
    num_workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> DemoDataset:
    """Writes the demo dataset in UCF101 layout, or finds it already complete.

    The dataset is written into a temporary sibling folder and renamed into place, so
    ``root`` is either absent, complete, or a folder of an earlier interrupted run that is
    regenerated. Layout::

        root/UCF-101/<Class>/v_<Class>_gXX_cYY.mp4
        root/ucfTrainTestlist/classInd.txt     "1 Grow" ...
        root/ucfTrainTestlist/trainlist01.txt  "Grow/v_Grow_g04_c01.mp4 1" ...
        root/ucfTrainTestlist/testlist01.txt   "Grow/v_Grow_g01_c01.mp4" ...
        root/demo_dataset.json                 parameters, seed, file sizes and sha256

    Args:
        root: the dataset folder.
        config: parameters (defaults: :class:`SynthConfig`).
        num_workers: processes rendering and encoding videos (1 = in this process).
        progress: called with ``(videos_done, videos_total)`` after each video.

    Returns:
        What is at ``root`` now.

    Raises:
        DemoDataError: ``root`` is a file, a non-empty folder that is not a demo dataset, a
            complete demo dataset with other parameters, or cannot be written.
    """
    config = config or SynthConfig()
    root = Path(root).expanduser()
    start = time.perf_counter()
    if root.exists() and not root.is_dir():
        raise DemoDataError(f"demo dataset root {root} is a file; pass a folder (--root DIR)")
    replace_existing = False
    if root.is_dir() and any(root.iterdir()):
        info = read_info(root)
        if info is None or info.get("generator") != "video_eleatt.demo":
            raise DemoDataError(
                f"{root} is not empty and holds no {INFO_FILE}: it does not look like a demo "
                "dataset, and it is left alone. Pass --root to an empty or new folder."
            )
        if is_complete(root, info):
            differences = _config_differences(info.get("config", {}), config)
            if info.get("version") != GENERATOR_VERSION:
                differences.append(
                    f"generator version {info.get('version')} (now {GENERATOR_VERSION})"
                )
            if differences:
                raise DemoDataError(
                    f"{root} holds a complete demo dataset made with other parameters: "
                    f"{'; '.join(differences)}. Pass --root to another folder, or delete {root} "
                    "to regenerate it."
                )
            return _describe(root, info, created=False)
        replace_existing = True  # ours but incomplete: regenerate

    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(root)
        partial = root.parent / f".{root.name}.partial-{os.getpid()}"
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir()
    except OSError as err:
        raise DemoDataError(
            f"cannot write the demo dataset at {root}: {err}. Pass --root to a writable folder."
        ) from err

    try:
        info = _write_dataset(partial, config, num_workers, progress)
        if replace_existing:
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            root.rename(old)
            partial.rename(root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if root.is_dir():
                root.rmdir()  # empty, checked above
            partial.rename(root)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise DemoDataError(
            f"writing the demo dataset at {root} failed: {err}. Nothing was left in place; "
            "free space or pass --root to a writable folder."
        ) from err
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return _describe(root, info, created=True, seconds=time.perf_counter() - start)


def _write_dataset(
    folder: Path,
    config: SynthConfig,
    num_workers: int,
    progress: Callable[[int, int], None] | None,
) -> dict:
    jobs = []
    train_lines, test_lines = [], []
    for label, class_name in enumerate(config.classes, start=1):
        (folder / VIDEO_DIR / class_name).mkdir(parents=True)
        for group, clip in config.clips():
            rel_path = video_rel_path(class_name, group, clip)
            listed = rel_path.split("/", 1)[1]
            if group <= config.test_groups:
                test_lines.append(listed)
            else:
                train_lines.append(f"{listed} {label}")
            jobs.append((config, class_name, group, clip, str(folder / rel_path)))

    files: dict[str, dict] = {}
    frame_counts: dict[str, int] = {}
    total = len(jobs)
    if num_workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # An executor, not a Pool: a worker that dies raises BrokenProcessPool here instead
        # of hanging. Spawned workers: no forked copies of a parent's threads or torch state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(num_workers, mp_context=context) as executor:
            results = executor.map(_write_one, jobs, chunksize=4)
            for done, result in enumerate(results, start=1):
                _record(folder, result, files, frame_counts)
                if progress:
                    progress(done, total)
    else:
        for done, job in enumerate(jobs, start=1):
            _record(folder, _write_one(job), files, frame_counts)
            if progress:
                progress(done, total)

    list_dir = folder / LIST_DIR
    list_dir.mkdir()
    texts = {
        f"{LIST_DIR}/classInd.txt": "".join(
            f"{label} {name}\n" for label, name in enumerate(config.classes, start=1)
        ),
        f"{LIST_DIR}/trainlist01.txt": "".join(line + "\n" for line in train_lines),
        f"{LIST_DIR}/testlist01.txt": "".join(line + "\n" for line in test_lines),
    }
    for rel_path, text in texts.items():
        (folder / rel_path).write_text(text, encoding="utf-8")
        data = text.encode("utf-8")
        files[rel_path] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    info = {
        "generator": "video_eleatt.demo",
        "version": GENERATOR_VERSION,
        "config": config.to_dict(),
        "classes": [
            {"id": class_id, "name": name, "family": CLASSES[name][0], "pattern": CLASSES[name][1]}
            for class_id, name in enumerate(config.classes)
        ],
        "split": {
            "test_groups": list(range(1, config.test_groups + 1)),
            "train_groups": list(range(config.test_groups + 1, config.num_groups + 1)),
            "num_train": len(train_lines),
            "num_test": len(test_lines),
        },
        "frames": frame_counts,
        "files": dict(sorted(files.items())),
    }
    # Written last: its presence with every listed file marks the folder complete.
    (folder / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def _record(folder: Path, result, files: dict, frame_counts: dict) -> None:
    path, size, digest, num_frames = result
    rel_path = Path(path).relative_to(folder).as_posix()
    files[rel_path] = {"bytes": size, "sha256": digest}
    frame_counts[rel_path] = num_frames


def _describe(root: Path, info: dict, created: bool, seconds: float = 0.0) -> DemoDataset:
    config = SynthConfig.from_dict(info["config"])
    return DemoDataset(
        root=root,
        created=created,
        config=config,
        class_names=list(config.classes),
        num_train=info["split"]["num_train"],
        num_test=info["split"]["num_test"],
        seconds=seconds,
    )
