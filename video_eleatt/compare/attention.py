"""What the first EleAtt layer attends to: per-dimension statistics, time courses, frame overlays.

Three analyses of a trained EleAtt model (the gate a_t in R^D of the first layer, which acts
directly on the per-frame CNN features):

1. **Per feature dimension** (the paper's first-layer attention analysis, adapted to CNN
   features): the mean of a_t over all valid steps of all videos of a subset, its spread
   (std over steps, and std over videos of each video's mean), and the mean per class.
   Written as ``attention_per_dim.csv``, ``attention_per_class.csv`` and two figures.
2. **Over time** for chosen videos: a heatmap (dimensions x time) of a_t, restricted to the
   ``top_k`` dimensions that vary most over time in that video when D is large.
3. **Spatial overlay** -- OUR EXTENSION, NOT THE PAPER'S METHOD. The paper shows first-layer
   attention on skeleton joints; for RGB features there is no such anatomy. When the cached
   features are globally average-pooled last-layer maps of a CNN, channel c of x_t is the
   spatial mean of map F_t[c] (C == D), so a_t[c] * x_t[c] is the spatial mean of
   a_t[c] * F_t[c]. The map ``M_t = sum_c a_t[c] F_t[c]`` (upsampled to the frame) shows
   where in the frame the attended feature mass comes from; ``sum_c F_t[c]`` (the gate held
   at 1) is drawn beside it for contrast, and for non-negative (post-ReLU) maps their ratio,
   the feature-weighted mean gate at each location (how much of the features found there
   the gate lets through). It says nothing about what the later layers or the classifier do
   with those features (it is not a class activation map).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from video_eleatt.compare.plots import new_figure, save_figure

OVERLAY_NOTE = (
    "Spatial overlay: our extension, not the paper's method (see video_eleatt.compare.attention)."
)


class AttentionError(ValueError):
    """The model, checkpoint or video cannot be analysed (the message says why and the fix)."""


@dataclass
class AttentionStats:
    """First-layer attention statistics per feature dimension over a set of videos.

    Attributes:
        mean: (D,) mean of a_t over every valid step of every video.
        std_steps: (D,) sample std of a_t over all those steps.
        std_videos: (D,) sample std over videos of each video's mean a_t (NaN for one video).
        class_mean: (C, D) mean over the steps of the videos of each class (NaN: no video).
        class_counts: (C,) videos per class.
        num_videos: Videos seen.
        num_steps: Valid steps seen.
    """

    mean: np.ndarray
    std_steps: np.ndarray
    std_videos: np.ndarray
    class_mean: np.ndarray
    class_counts: np.ndarray
    num_videos: int
    num_steps: int


class AttentionAccumulator:
    """Streams per-video attentions (T, D) into :class:`AttentionStats` (float64 sums).

    >>> accumulator = AttentionAccumulator(feature_dim=2, num_classes=1)
    >>> accumulator.add(np.array([[0.2, 1.0], [0.4, 1.0]]), label=0)
    >>> accumulator.result().mean.tolist()
    [0.30000000000000004, 1.0]
    """

    def __init__(self, feature_dim: int, num_classes: int = 0) -> None:
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.step_sum = np.zeros(feature_dim)
        self.step_sum_squares = np.zeros(feature_dim)
        self.num_steps = 0
        self.video_means: list[np.ndarray] = []
        self.class_sum = np.zeros((num_classes, feature_dim))
        self.class_steps = np.zeros(num_classes)
        self.class_counts = np.zeros(num_classes, dtype=np.int64)

    def add(self, attention: np.ndarray, label: int | None = None) -> None:
        """Add one video's attention ``(T, D)`` over its valid steps only."""
        attention = np.asarray(attention, dtype=np.float64)
        if attention.ndim != 2 or attention.shape[1] != self.feature_dim or not len(attention):
            raise AttentionError(
                f"attention of one video must be (T >= 1, {self.feature_dim}); got "
                f"{attention.shape}"
            )
        self.step_sum += attention.sum(axis=0)
        self.step_sum_squares += np.square(attention).sum(axis=0)
        self.num_steps += attention.shape[0]
        self.video_means.append(attention.mean(axis=0))
        if label is not None and 0 <= label < self.num_classes:
            self.class_sum[label] += attention.sum(axis=0)
            self.class_steps[label] += attention.shape[0]
            self.class_counts[label] += 1

    def result(self) -> AttentionStats:
        """The statistics of everything added so far."""
        if not self.video_means:
            raise AttentionError("no videos were analysed: the subset is empty")
        n = self.num_steps
        mean = self.step_sum / n
        if n > 1:
            variance = (self.step_sum_squares - n * mean**2) / (n - 1)
            std_steps = np.sqrt(np.clip(variance, 0.0, None))
        else:
            std_steps = np.full(self.feature_dim, np.nan)
        video_means = np.stack(self.video_means)  # (videos, D)
        std_videos = (
            video_means.std(axis=0, ddof=1)
            if len(video_means) > 1
            else np.full(self.feature_dim, np.nan)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            class_mean = self.class_sum / self.class_steps[:, None]  # (C, D), NaN when empty
        return AttentionStats(
            mean=mean,
            std_steps=std_steps,
            std_videos=std_videos,
            class_mean=class_mean,
            class_counts=self.class_counts.copy(),
            num_videos=len(self.video_means),
            num_steps=n,
        )


def check_has_attention(model: nn.Module) -> None:
    """Raise :class:`AttentionError` unless ``model`` (a SequenceClassifier) has an EleAtt layer."""
    config = getattr(model, "config", None)
    if getattr(config, "num_eleatt_layers", 0) < 1:
        raise AttentionError(
            f"the model has no EleAtt layer (num_eleatt_layers = "
            f"{getattr(config, 'num_eleatt_layers', '?')}): a baseline has no attention gate to "
            "analyse; pass the checkpoint of an EleAtt variant"
        )


@torch.no_grad()
def first_layer_attention(
    model: nn.Module, features: Tensor, lengths: Tensor | None = None, layer: int = 0
) -> list[np.ndarray]:
    """Gate values a_t of one EleAtt layer for a batch, cut to each video's valid steps.

    Args:
        model: A :class:`~video_eleatt.models.SequenceClassifier` with an EleAtt layer.
        features: (B, T, D) features on the model's device.
        lengths: (B,) valid lengths, or None when all are T.
        layer: Which EleAtt layer (0 = the first, the one acting on the CNN features).

    Returns:
        One float32 array (T_i, D_layer) per video.
    """
    check_has_attention(model)
    was_training = model.training
    model.eval()
    try:
        _, attentions = model(features, lengths=lengths, return_attention=True)
    finally:
        model.train(was_training)
    if not 0 <= layer < len(attentions):
        raise AttentionError(
            f"layer {layer} asked, but the model has {len(attentions)} EleAtt layer(s)"
        )
    attention = attentions[layer].float().cpu().numpy()  # (B, T, D)
    if lengths is None:
        return list(attention)
    return [attention[i, : int(length)] for i, length in enumerate(lengths.tolist())]


def collect_attention(
    model: nn.Module,
    videos: Iterable[tuple[str, Tensor, int | None]],
    num_classes: int,
    keep: Sequence[str] = (),
    batch_size: int = 32,
    layer: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[AttentionStats, dict[str, np.ndarray]]:
    """Run the model over videos and gather first-layer attention statistics.

    Args:
        model: The trained classifier (EleAtt variant).
        videos: ``(rel_path, features (T, D), label)`` per video.
        num_classes: C, for the per-class means.
        keep: rel_paths whose full attention (T, D) is returned (for the time heatmaps).
        batch_size: Videos per forward pass (padded to the longest).
        layer: EleAtt layer index.
        device: Where the model runs.

    Returns:
        ``(stats, kept)`` with ``kept[rel_path] = attention (T, D)``.
    """
    check_has_attention(model)
    model = model.to(device)
    keep_set = set(keep)
    kept: dict[str, np.ndarray] = {}
    accumulator: AttentionAccumulator | None = None
    batch: list[tuple[str, Tensor, int | None]] = []

    def flush() -> None:
        nonlocal accumulator
        lengths = torch.tensor([item[1].shape[0] for item in batch], dtype=torch.int64)
        padded = torch.nn.utils.rnn.pad_sequence(
            [item[1].float() for item in batch], batch_first=True
        ).to(device)  # (B, T_max, D)
        per_video = first_layer_attention(model, padded, lengths.to(device), layer)
        for (rel_path, _, label), attention in zip(batch, per_video):
            if accumulator is None:
                accumulator = AttentionAccumulator(attention.shape[1], num_classes)
            accumulator.add(attention, label)
            if rel_path in keep_set:
                kept[rel_path] = attention
        batch.clear()

    for item in videos:
        batch.append(item)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if accumulator is None:
        raise AttentionError("no videos were analysed: the subset is empty")
    missing = sorted(keep_set - set(kept))
    if missing:
        raise AttentionError(
            f"videos {missing} were asked for but are not in the analysed subset; pick rel_paths "
            "from the cache's manifest (and the chosen split/subset)"
        )
    return accumulator.result(), kept


def write_attention_stats(
    stats: AttentionStats, output_dir: str | Path, class_names: Sequence[str] = ()
) -> list[Path]:
    """CSV and figures of the per-dimension statistics.

    Writes ``attention_per_dim.csv`` (dim, mean, std over steps, std over videos),
    ``attention_per_class.csv`` (class x dim means), ``attention_per_dim.png`` (mean with the
    ±std band, by dimension and sorted) and ``attention_per_class.png`` (class means relative
    to the overall mean).

    Returns:
        The written files.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    per_dim = output_dir / "attention_per_dim.csv"
    with per_dim.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dim", "mean", "std_over_steps", "std_over_videos"])
        for dim in range(stats.mean.size):
            writer.writerow(
                [
                    dim,
                    f"{stats.mean[dim]:.6g}",
                    _number(stats.std_steps[dim]),
                    _number(stats.std_videos[dim]),
                ]
            )
    names = list(class_names) or [str(i) for i in range(stats.class_mean.shape[0])]
    per_class = output_dir / "attention_per_class.csv"
    with per_class.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class_id", "class_name", "num_videos", *range(stats.mean.size)])
        for class_id, row in enumerate(stats.class_mean):
            writer.writerow(
                [class_id, names[class_id], int(stats.class_counts[class_id])]
                + [_number(v) for v in row]
            )
    files = [per_dim, per_class, _plot_per_dim(stats, output_dir / "attention_per_dim.png")]
    if stats.class_mean.shape[0]:
        files.append(_plot_per_class(stats, names, output_dir / "attention_per_class.png"))
    return files


def _number(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


def _plot_per_dim(stats: AttentionStats, path: Path) -> Path:
    figure = new_figure(12.0, 3.8)
    dims = np.arange(stats.mean.size)
    spread = np.nan_to_num(stats.std_steps, nan=0.0)
    for column, (order, xlabel) in enumerate(
        (
            (dims, "feature dimension"),
            (np.argsort(stats.mean)[::-1], "feature dimensions, sorted by mean attention"),
        )
    ):
        axes = figure.add_subplot(1, 2, column + 1)
        axes.plot(dims, stats.mean[order], color="C0", linewidth=0.8, label="mean a_t")
        axes.fill_between(
            dims,
            stats.mean[order] - spread[order],
            stats.mean[order] + spread[order],
            color="C0",
            alpha=0.25,
            label="± std over steps",
        )
        axes.set_xlabel(xlabel)
        axes.set_ylabel("attention a_t")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(
        f"First-layer attention per feature dimension ({stats.num_videos} videos, "
        f"{stats.num_steps} steps)"
    )
    return save_figure(figure, path)


def _plot_per_class(stats: AttentionStats, names: Sequence[str], path: Path) -> Path:
    relative = stats.class_mean / np.where(stats.mean > 0, stats.mean, np.nan)  # (C, D)
    figure = new_figure(12.0, max(3.0, 0.25 * len(names) + 1.5))
    axes = figure.add_subplot(1, 1, 1)
    finite = relative[np.isfinite(relative)]
    spread = float(np.max(np.abs(finite - 1.0))) if finite.size else 1.0
    image = axes.imshow(
        relative,
        aspect="auto",
        cmap="RdBu_r",
        vmin=1.0 - spread,
        vmax=1.0 + spread,
        interpolation="nearest",
    )
    figure.colorbar(image, ax=axes, label="class mean / overall mean")
    if len(names) <= 60:
        axes.set_yticks(np.arange(len(names)))
        axes.set_yticklabels(names, fontsize=7)
    axes.set_xlabel("feature dimension")
    axes.set_title("First-layer attention per class, relative to the mean over all videos")
    return save_figure(figure, path)


def most_variable_dims(attention: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` dimensions of ``attention (T, D)`` with the largest std over
    time, in increasing index order (all dimensions when D <= top_k)."""
    num_dims = attention.shape[1]
    if top_k <= 0 or num_dims <= top_k:
        return np.arange(num_dims)
    variation = attention.std(axis=0)  # (D,)
    return np.sort(np.argsort(variation)[::-1][:top_k])


def plot_attention_over_time(
    attention: np.ndarray,
    path: str | Path,
    title: str,
    timestamps: np.ndarray | None = None,
    top_k: int = 64,
) -> Path:
    """Heatmap of a_t for one video: dimensions (rows) x time steps (columns).

    Args:
        attention: (T, D) gate values of the video's valid steps.
        path: Output PNG.
        title: Figure title (e.g. the rel_path and label).
        timestamps: (T,) seconds of each step, for the x labels.
        top_k: Show only the ``top_k`` most variable dimensions over time (0: all).

    Returns:
        ``path``.
    """
    dims = most_variable_dims(attention, top_k)
    shown = attention[:, dims].T  # (K, T)
    figure = new_figure(max(6.0, 0.12 * shown.shape[1] + 3.0), max(3.0, 0.06 * len(dims) + 2.0))
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(shown, aspect="auto", cmap="viridis", vmin=0.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, label="attention a_t")
    num_steps = attention.shape[0]
    ticks = np.unique(np.linspace(0, num_steps - 1, min(num_steps, 8)).round().astype(int))
    axes.set_xticks(ticks)
    if timestamps is not None and len(timestamps) == num_steps:
        axes.set_xticklabels([f"{timestamps[t]:.1f}s" for t in ticks])
        axes.set_xlabel("time (step timestamp)")
    else:
        axes.set_xlabel("step")
    if len(dims) <= 40:
        axes.set_yticks(np.arange(len(dims)))
        axes.set_yticklabels([str(d) for d in dims], fontsize=6)
    subset = "" if len(dims) == attention.shape[1] else f", {len(dims)} most variable dims"
    axes.set_ylabel("feature dimension")
    axes.set_title(f"{title}{subset}")
    return save_figure(figure, Path(path))


# ---------------------------------------------------------------- spatial overlay (extension)


@dataclass
class OverlayResult:
    """Output of :func:`attention_overlay_maps`.

    Attributes:
        attended: (T, h, w) sum_c a_t[c] F_t[c], upsampled to the frame size.
        unweighted: (T, h, w) sum_c F_t[c] (the gate held at 1), same size.
        files: PNG / GIF written by the drawing functions.
    """

    attended: np.ndarray
    unweighted: np.ndarray
    files: list[Path] = field(default_factory=list)


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
    columns = np.unique(np.linspace(0, num_steps - 1, min(num_steps, max_frames)).round()).astype(
        int
    )
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
