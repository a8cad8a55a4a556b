"""Drawing the demo videos: shapes whose class is only visible in time.

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

The classes and :class:`~video_eleatt.demo.synth_config.SynthConfig` are in
:mod:`video_eleatt.demo.synth_config`; :mod:`video_eleatt.demo.synth` encodes the frames drawn
here and writes the dataset folder.

>>> config = SynthConfig(videos_per_class=4)
>>> frames = render_video("Grow", config, group=1, clip=1)  # (T, H, W, 3) uint8
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import numpy as np

from video_eleatt.demo.synth_config import CLASSES, SynthConfig

# Shapes of the main object per family: rotation needs shapes whose angle is visible.
SHAPES = ("circle", "square", "triangle", "hexagon", "cross", "arrow")
ROTATING_SHAPES = ("triangle", "arrow", "cross", "square")


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
