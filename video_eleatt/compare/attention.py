"""What the first EleAtt layer attends to over a data set: per-dimension statistics, time courses.

Three analyses of a trained EleAtt model (the gate a_t in R^D of the first layer, which acts
directly on the per-frame CNN features):

1. **Per feature dimension** (the paper's first-layer attention analysis, adapted to CNN
   features): the mean of a_t over all valid steps of all videos of a subset, its spread
   (std over steps, and std over videos of each video's mean), and the mean per class.
   Written as ``attention_per_dim.csv``, ``attention_per_class.csv`` and two figures.
2. **Over time** for chosen videos: a heatmap (dimensions x time) of a_t, restricted to the
   ``top_k`` dimensions that vary most over time in that video when D is large.
3. **Spatial overlay** over the frames (our extension, not the paper's method) lives with
   inference, where ``predict --attention_overlay`` uses it too:
   :mod:`video_eleatt.inference.spatial`.

The gate values themselves are read by :mod:`video_eleatt.inference.gates`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from video_eleatt.figures import new_figure, save_figure
from video_eleatt.inference.errors import AttentionError
from video_eleatt.inference.gates import check_has_attention, first_layer_attention


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
