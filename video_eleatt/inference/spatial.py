"""Where in the frame the first EleAtt layer's attention falls: OUR EXTENSION, NOT THE PAPER'S.

The paper shows first-layer attention on skeleton joints; for RGB features there is no such
anatomy. When the cached features are globally average-pooled last-layer maps of a CNN,
channel c of x_t is the spatial mean of map F_t[c] (C == D), so a_t[c] * x_t[c] is the spatial
mean of a_t[c] * F_t[c]. The map ``M_t = sum_c a_t[c] F_t[c]`` (upsampled to the frame) shows
where in the frame the attended feature mass comes from; ``sum_c F_t[c]`` (the gate held at 1)
is drawn beside it for contrast, and for non-negative (post-ReLU) maps their ratio, the
feature-weighted mean gate at each location (how much of the features found there the gate
lets through). It says nothing about what the later layers or the classifier do with those
features (it is not a class activation map).

Used by ``video-eleatt predict --attention_overlay`` (frames of a raw video,
:mod:`video_eleatt.inference.predict`) and ``video-eleatt attention`` (the frames a feature
cache sampled, :func:`overlay_video`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from video_eleatt.features.preprocess import FramePreprocess, PreprocessConfig, normalize_frames
from video_eleatt.figures import new_figure, save_figure
from video_eleatt.fileio import safe_name
from video_eleatt.inference.errors import AttentionError
from video_eleatt.inference.gates import first_layer_attention
from video_eleatt.video.decode import read_frames

OVERLAY_NOTE = (
    "Spatial overlay: our extension, not the paper's method (see video_eleatt.inference.spatial)."
)
# Recomputed features farther than this (relative) from the cached ones: warn that the
# backbone or preprocessing differs from the extraction.
FEATURE_MISMATCH_TOLERANCE = 0.05
MAX_GIF_STEPS = 64


def evenly_spaced(count: int, limit: int) -> np.ndarray:
    """At most ``limit`` indices spread evenly over ``range(count)``, first and last included."""
    return np.unique(np.linspace(0, count - 1, min(count, limit)).round()).astype(np.int64)


@torch.no_grad()
def spatial_feature_maps(backbone: nn.Module, images: Tensor) -> Tensor:
    """The last spatial feature maps (N, C, H', W') that the backbone pools into its features.

    timm models: ``forward_features`` (ViT-style token outputs are reshaped to a grid after
    dropping prefix tokens). Other models (torchvision): the input of the last
    ``nn.AdaptiveAvgPool2d`` is captured with a hook during a normal forward pass.

    Args:
        backbone: The frame backbone (eval mode).
        images: (N, 3, h, w) normalised input.

    Returns:
        (N, C, H', W') float32.
    """
    backbone.eval()
    if hasattr(backbone, "forward_features"):
        maps = backbone.forward_features(images)
        if maps.ndim == 3:  # (N, tokens, C): a transformer
            prefix = int(getattr(backbone, "num_prefix_tokens", 0))
            tokens = maps[:, prefix:]
            side = math.isqrt(tokens.shape[1])
            if side * side != tokens.shape[1]:
                raise AttentionError(
                    f"cannot arrange {tokens.shape[1]} tokens into a square grid for the overlay"
                )
            maps = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)
        if maps.ndim != 4:
            raise AttentionError(
                f"backbone forward_features gave shape {tuple(maps.shape)}; expected (N, C, H, W)"
            )
        return maps.float()
    pools = [m for m in backbone.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise AttentionError(
            f"{type(backbone).__name__} has neither forward_features nor an AdaptiveAvgPool2d: "
            "cannot find its last spatial feature maps for the overlay"
        )
    captured: list[Tensor] = []
    handle = pools[-1].register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        backbone(images)
    finally:
        handle.remove()
    return captured[-1].float()


def attention_overlay_maps(
    feature_maps: Tensor, attention: np.ndarray | Tensor, frame_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Weight channels by the attention and sum: ``sum_c a_t[c] F_t[c]``, upsampled.

    Args:
        feature_maps: (T, C, H', W') backbone maps of the video's sampled frames.
        attention: (T, D) first-layer attention of the same steps; needs C == D.
        frame_size: (h, w) to upsample to (the backbone input size).

    Returns:
        ``(attended, unweighted)``, each (T, h, w) float32.
    """
    attention = torch.as_tensor(np.asarray(attention), dtype=torch.float32)
    num_steps, channels = feature_maps.shape[:2]
    if attention.shape != (num_steps, channels):
        raise AttentionError(
            f"attention has shape {tuple(attention.shape)} but the backbone maps have "
            f"{num_steps} frames x {channels} channels: the overlay needs one attention value per "
            "channel (features that are globally pooled last-layer maps of this backbone, C == D)"
        )
    attended = torch.einsum("tchw,tc->thw", feature_maps, attention)  # (T, H', W')
    unweighted = feature_maps.sum(dim=1)  # (T, H', W')
    stacked = torch.stack([attended, unweighted], dim=1)  # (T, 2, H', W')
    upsampled = torch.nn.functional.interpolate(
        stacked, size=frame_size, mode="bilinear", align_corners=False
    )  # (T, 2, h, w)
    return upsampled[:, 0].numpy(), upsampled[:, 1].numpy()


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Min-max over the whole video (not per frame), so frames stay comparable."""
    low, high = float(maps.min()), float(maps.max())
    return (maps - low) / (high - low) if high > low else np.zeros_like(maps)


def relative_attention_map(attended: np.ndarray, unweighted: np.ndarray) -> np.ndarray | None:
    """Per location, the feature-weighted mean gate: ``sum_c a_c F_c / sum_c F_c``.

    Where the features are strong, this says how much of them the gate lets through, whatever
    their magnitude. Defined for non-negative maps (post-ReLU CNN features); None otherwise.
    Locations with (almost) no feature mass get the video's mean value.

    Args:
        attended: (T, h, w) attention-weighted maps.
        unweighted: (T, h, w) unweighted maps.

    Returns:
        (T, h, w) values in the range of the attention, or None.
    """
    if unweighted.min() < 0:
        return None
    floor = 1e-3 * float(unweighted.max())
    valid = unweighted > floor
    if not valid.any():
        return None
    relative = np.full_like(attended, float(attended[valid].sum() / unweighted[valid].sum()))
    relative[valid] = attended[valid] / unweighted[valid]
    return relative


def draw_overlay_grid(
    frames: np.ndarray,
    attended: np.ndarray,
    unweighted: np.ndarray,
    path: str | Path,
    title: str,
    timestamps: Sequence[float] | None = None,
    max_frames: int = 8,
) -> Path:
    """PNG grid: the frames, then over them the gate-at-1 map, the attention-weighted map and
    (for non-negative features) the mean gate per location.

    Args:
        frames: (T, h, w, 3) uint8 frames as the backbone saw them (resized and cropped).
        attended: (T, h, w) attention-weighted maps.
        unweighted: (T, h, w) unweighted maps.
        path: Output PNG.
        title: Figure title.
        timestamps: (T,) seconds, for the column titles.
        max_frames: Columns at most (frames evenly spaced over the video).

    Returns:
        ``path``.
    """
    num_steps = frames.shape[0]
    columns = evenly_spaced(num_steps, max_frames)
    rows: list[tuple[str, np.ndarray | None]] = [
        ("frame", None),
        ("features (gate = 1)", _normalise(unweighted)),
        ("attention-weighted", _normalise(attended)),
    ]
    relative = relative_attention_map(attended, unweighted)
    if relative is not None:
        low, high = float(relative.min()), float(relative.max())
        rows.append((f"mean gate here\n({low:.3f} to {high:.3f})", _normalise(relative)))
    figure = new_figure(2.0 * len(columns) + 0.5, 2.2 * len(rows))
    for row, (row_title, maps) in enumerate(rows):
        for column, step in enumerate(columns):
            axes = figure.add_subplot(len(rows), len(columns), row * len(columns) + column + 1)
            axes.imshow(frames[step])
            if maps is not None:
                axes.imshow(maps[step], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                when = f"{timestamps[step]:.1f}s" if timestamps is not None else ""
                axes.set_title(f"step {step} {when}".strip(), fontsize=8)
            if column == 0:
                axes.set_ylabel(row_title, fontsize=8)
    figure.suptitle(f"{title}\n{OVERLAY_NOTE}", fontsize=9)
    return save_figure(figure, Path(path))


def save_overlay_gif(
    frames: np.ndarray, attended: np.ndarray, path: str | Path, frame_duration_ms: int = 250
) -> Path:
    """Animated GIF of the attention-weighted map blended over every frame (PIL).

    Args:
        frames: (T, h, w, 3) uint8.
        attended: (T, h, w) maps.
        path: Output .gif.
        frame_duration_ms: Display time per frame.

    Returns:
        ``path``.
    """
    from matplotlib import colormaps
    from PIL import Image

    heat = colormaps["jet"](_normalise(attended))[..., :3]  # (T, h, w, 3) in [0, 1]
    blended = (0.55 * frames.astype(np.float32) / 255.0 + 0.45 * heat) * 255.0
    images = [Image.fromarray(np.clip(b, 0, 255).astype(np.uint8)) for b in blended]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=frame_duration_ms, loop=0
    )
    return path


@torch.no_grad()
def frame_attention_maps(
    backbone: nn.Module,
    preprocess: PreprocessConfig,
    frames: Tensor,
    attention: np.ndarray,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """The backbone's maps of frames and their attention-weighted sums.

    Args:
        backbone: The frame backbone that made the features (eval mode).
        preprocess: Its preprocessing (for the normalisation).
        frames: (S, 3, h, w) uint8 frames as the backbone saw them (resized and cropped).
        attention: (S, D) first-layer attention of the same steps.
        device: Where the backbone runs.

    Returns:
        ``(maps, attended, unweighted)``: maps (S, C, H', W') float32 on the CPU; attended
        and unweighted (S, h, w) as :func:`attention_overlay_maps` gives them.
    """
    images = normalize_frames(frames.to(device), preprocess)  # (S, 3, h, w) float
    maps = spatial_feature_maps(backbone.to(device), images.float()).cpu()  # (S, C, H', W')
    frame_size = (int(frames.shape[2]), int(frames.shape[3]))
    attended, unweighted = attention_overlay_maps(maps, attention, frame_size)
    return maps, attended, unweighted


@torch.no_grad()
def overlay_video(
    classifier: nn.Module,
    backbone: nn.Module,
    preprocess: Any,
    cache: Any,
    rel_path: str,
    video_path: str | Path,
    output_dir: str | Path,
    max_frames: int = 8,
    gif: bool = False,
    layer: int = 0,
    device: str = "cpu",
) -> tuple[list[Path], str | None]:
    """Spatial overlay of one cached video (see the module docstring).

    Decodes the frames the cache sampled (its ``frame_indices``), preprocesses them as the
    extraction did, runs the backbone to its last spatial maps, weights the channels by the
    first-layer attention of the cached features and draws the result over the frames.

    Args:
        classifier: A trained EleAtt :class:`SequenceClassifier`.
        backbone: The backbone that made the cache (``Backbone.model``).
        preprocess: Its :class:`PreprocessConfig`.
        cache: The feature cache (``load(rel_path)`` gives the entry).
        rel_path: The video's key in the cache.
        video_path: The video file.
        output_dir: Where ``overlay_<name>.png`` (and ``.gif``) go.
        max_frames: Frames shown in the grid.
        gif: Also write an animated GIF over every step (at most 64).
        layer: EleAtt layer.
        device: Where the models run.

    Returns:
        ``(files, warning)``; the warning says when the recomputed features differ from the
        cached ones (another backbone, weights or preprocessing than the extraction's).
    """
    entry = cache.load(rel_path)
    features = entry.features.float()  # (T, D)
    attention = first_layer_attention(classifier, features.unsqueeze(0).to(device), layer=layer)[
        0
    ]  # (T, D)
    num_steps = features.shape[0]
    steps = evenly_spaced(num_steps, min(num_steps if gif else max_frames, MAX_GIF_STEPS))
    frame_indices = entry.frame_indices.numpy()[steps]
    _, _, _, decoded = read_frames(video_path, lambda info, timestamps: frame_indices)
    # decoded: (S, H, W, 3) uint8, in sorted index order == step order
    if decoded.shape[0] != len(steps):
        raise AttentionError(
            f"{video_path}: decoded {decoded.shape[0]} frames for {len(steps)} cached steps"
        )
    cropped = FramePreprocess(preprocess, output="uint8")(decoded)  # (S, 3, h, w) uint8
    maps, attended, unweighted = frame_attention_maps(
        backbone, preprocess, cropped, attention[steps], device
    )
    recomputed = maps.mean(dim=(2, 3))  # (S, C)
    warning = None
    if recomputed.shape[1] == features.shape[1]:
        difference = (recomputed - features[steps]).norm() / features[steps].norm().clamp_min(1e-8)
        if difference > FEATURE_MISMATCH_TOLERANCE:
            warning = (
                f"{rel_path}: the backbone's pooled maps differ from the cached features by "
                f"{float(difference):.1%} (relative); the backbone, its weights or the "
                "preprocessing are not the extraction's, so the overlay may not show what the "
                "model saw"
            )
    frames = cropped.permute(0, 2, 3, 1).numpy()  # (S, h, w, 3)
    timestamps = entry.timestamps.numpy()[steps]
    output_dir = Path(output_dir)
    name = safe_name(rel_path)
    shown = evenly_spaced(len(steps), max_frames)
    files = [
        draw_overlay_grid(
            frames[shown],
            attended[shown],
            unweighted[shown],
            output_dir / f"overlay_{name}.png",
            f"{rel_path}: first-layer attention over the frames",
            timestamps[shown],
            max_frames,
        )
    ]
    if gif:
        files.append(save_overlay_gif(frames, attended, output_dir / f"overlay_{name}.gif"))
    return files, warning
