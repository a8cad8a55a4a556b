"""Figures of the comparison report (matplotlib, Agg canvas; no pyplot global state).

Every function takes already-aggregated numbers and writes one PNG; the aggregation lives in
:mod:`video_eleatt.compare.report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_eleatt.figures import new_figure, save_figure

# Class names are drawn as tick labels only up to this many classes (Kinetics has 400).
MAX_LABELLED_CLASSES = 60


@dataclass
class Curve:
    """Mean ± sample std of one per-epoch metric over runs.

    Attributes:
        epochs: (E,) epoch numbers (0-based, as Lightning counts).
        mean: (E,) mean over the runs that reached each epoch.
        std: (E,) sample std over those runs (NaN where only one run).
        count: (E,) how many runs contributed at each epoch.
    """

    epochs: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray


def plot_curves(
    panels: Mapping[str, Mapping[str, Curve]],
    path: str | Path,
    ylabels: Mapping[str, str] | None = None,
    title: str | None = None,
    bounds: tuple[float, float] | None = None,
) -> Path:
    """Side-by-side panels of per-epoch curves, mean line and ±std band per variant.

    Args:
        panels: Panel title -> (variant label -> curve). Variants keep the same colour in
            every panel.
        path: Output PNG.
        ylabels: Panel title -> y-axis label.
        title: Figure title.
        bounds: (low, high) the values cannot leave (accuracy: (0, 1)); bands are clipped.

    Returns:
        ``path``.
    """
    from matplotlib.ticker import MaxNLocator

    ylabels = dict(ylabels or {})

    labels: list[str] = []
    for curves in panels.values():
        labels += [label for label in curves if label not in labels]
    figure = new_figure(5.0 * max(1, len(panels)), 3.8)
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for column, (panel_title, curves) in enumerate(panels.items()):
        axes = figure.add_subplot(1, max(1, len(panels)), column + 1)
        for label, curve in curves.items():
            if curve.epochs.size == 0:
                continue
            colour = colours[label]
            n_text = _count_text(curve.count)
            axes.plot(curve.epochs, curve.mean, color=colour, label=f"{label} ({n_text})")
            band = np.nan_to_num(curve.std, nan=0.0)
            low, high = curve.mean - band, curve.mean + band
            if bounds is not None:
                low, high = np.clip(low, *bounds), np.clip(high, *bounds)
            axes.fill_between(curve.epochs, low, high, color=colour, alpha=0.2)
        axes.set_title(panel_title)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(ylabels.get(panel_title, ""))
        axes.grid(alpha=0.3)
        if curves:
            axes.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return save_figure(figure, Path(path))


def _count_text(count: np.ndarray) -> str:
    low, high = int(count.min()), int(count.max())
    return f"n = {high}" if low == high else f"n = {low}-{high}"


def plot_per_class_difference(
    class_names: Sequence[str],
    mean_difference: np.ndarray,
    std_difference: np.ndarray,
    num_pairs: int,
    path: str | Path,
    title: str,
) -> Path:
    """Bar chart of per-class accuracy difference (variant − baseline), sorted, in points.

    Args:
        class_names: (C,) names.
        mean_difference: (C,) mean difference in percentage points (NaN: class not tested).
        std_difference: (C,) sample std over the pairs (error bars; NaN drawn as none).
        num_pairs: Number of (split, seed) pairs averaged.
        path: Output PNG.
        title: Figure title.

    Returns:
        ``path``.
    """
    mean_difference = np.asarray(mean_difference, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(mean_difference))
    order = valid[np.argsort(mean_difference[valid])[::-1]]
    num_classes = len(order)
    labelled = num_classes <= MAX_LABELLED_CLASSES
    figure = new_figure(max(6.0, 0.22 * num_classes + 2.0) if labelled else 12.0, 4.2)
    axes = figure.add_subplot(1, 1, 1)
    values = mean_difference[order]
    errors = np.nan_to_num(np.asarray(std_difference, dtype=np.float64)[order], nan=0.0)
    colours = ["tab:green" if value >= 0 else "tab:red" for value in values]
    positions = np.arange(num_classes)
    axes.bar(positions, values, yerr=errors if num_pairs > 1 else None, color=colours, capsize=2)
    axes.axhline(0.0, color="black", linewidth=0.8)
    if labelled:
        axes.set_xticks(positions)
        axes.set_xticklabels([class_names[i] for i in order], rotation=90, fontsize=7)
    else:
        axes.set_xlabel(f"{num_classes} classes, sorted by difference")
    axes.set_ylabel("accuracy difference (points)")
    axes.set_title(f"{title} (mean over {num_pairs} paired runs; bars: ±std)")
    axes.grid(axis="y", alpha=0.3)
    return save_figure(figure, Path(path))


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], path: str | Path, title: str
) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) as an image.

    Args:
        matrix: (C, C) counts (summed over runs).
        class_names: (C,) names.
        path: Output PNG.
        title: Figure title.

    Returns:
        ``path``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    row_sums = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    num_classes = matrix.shape[0]
    labelled = num_classes <= MAX_LABELLED_CLASSES
    size = min(14.0, max(4.5, 0.25 * num_classes + 2.5))
    figure = new_figure(size + 1.0, size)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    if labelled:
        ticks = np.arange(num_classes)
        axes.set_xticks(ticks)
        axes.set_yticks(ticks)
        axes.set_xticklabels(class_names, rotation=90, fontsize=7)
        axes.set_yticklabels(class_names, fontsize=7)
        if num_classes <= 15:
            for row in range(num_classes):
                for column in range(num_classes):
                    value = normalised[row, column]
                    if value > 0:
                        axes.text(
                            column,
                            row,
                            f"{value:.2f}",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if value > 0.5 else "black",
                        )
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    return save_figure(figure, Path(path))


def plot_metric_bars(
    labels: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float],
    counts: Sequence[int],
    path: str | Path,
    ylabel: str,
    title: str,
) -> Path:
    """Bar per variant with ±std error bars and each bar's n.

    Args:
        labels: Variant labels.
        means: Mean per variant (already scaled, e.g. percent).
        stds: Sample std per variant (NaN: no bar).
        counts: Runs per variant.
        path: Output PNG.
        ylabel: Y-axis label.
        title: Figure title.

    Returns:
        ``path``.
    """
    figure = new_figure(max(4.5, 1.2 * len(labels) + 1.5), 3.8)
    axes = figure.add_subplot(1, 1, 1)
    positions = np.arange(len(labels))
    errors = np.nan_to_num(np.asarray(stds, dtype=np.float64), nan=0.0)
    bars = axes.bar(
        positions,
        means,
        yerr=errors,
        capsize=4,
        color=[f"C{i % 10}" for i in range(len(labels))],
    )
    for bar, count in zip(bars, counts):
        axes.annotate(
            f"n = {count}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    axes.set_xticks(positions)
    axes.set_xticklabels(labels, rotation=20, ha="right")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    return save_figure(figure, Path(path))
