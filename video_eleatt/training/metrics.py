"""Classification metrics for video-level predictions, and the files written at test time.

Names and definitions (every value is a fraction in [0, 1]):

- ``top1``: micro-averaged accuracy, correct videos / all videos.
- ``top5``: micro-averaged top-5 accuracy, videos whose true class is among the 5 highest
  scores / all videos. Only defined when there are at least 5 classes: with fewer, every
  video would count as correct, so it is not computed (``None`` in files, absent from the
  logged metrics) and a warning says so. :func:`topk_accuracy` rejects ``k > C``.
- ``mean_class_accuracy``: macro-averaged recall, the mean over classes of (correct videos of
  the class / videos of the class), over the classes present in the evaluated subset. A class
  with no video in the subset has no recall and is left out of the mean (torchmetrics'
  ``MulticlassAccuracy(average="macro")`` would count it as 0 when it is predicted).
- ``loss``: mean cross-entropy per video (negative log of the probability given to the true
  class; with several clips, of the clip-averaged probability).

All states are torchmetrics states, so under DDP they are summed over processes before any
value is computed.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from video_eleatt.figures import new_figure

TOP_K = 5


def topk_accuracy(scores: Tensor, target: Tensor, k: int) -> float:
    """Fraction of rows whose target is among the ``k`` highest scores (micro average).

    Args:
        scores: (N, C) class scores or probabilities.
        target: (N,) int64 class ids.
        k: how many top classes count, 1 <= k <= C.

    Raises:
        ValueError: when ``k`` is outside [1, C].

    >>> topk_accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]), 1)
    0.5
    """
    num_classes = scores.shape[1]
    if not 1 <= k <= num_classes:
        raise ValueError(
            f"top-{k} accuracy needs 1 <= k <= number of classes, got k={k} with "
            f"{num_classes} classes (every video would count as correct); use a smaller k"
        )
    top = scores.topk(k, dim=1).indices  # (N, k)
    return (top == target.unsqueeze(1)).any(dim=1).double().mean().item()


def per_class_accuracy(confusion: Tensor) -> list[float | None]:
    """Recall per class from a confusion matrix (rows = true class, columns = predicted).

    Returns:
        One value per class; ``None`` for a class with no video.
    """
    confusion = confusion.double()
    support = confusion.sum(dim=1)
    correct = confusion.diagonal()
    return [
        None if support[c] == 0 else (correct[c] / support[c]).item()
        for c in range(confusion.shape[0])
    ]


def mean_class_accuracy(confusion: Tensor) -> float:
    """Mean over the classes present (support > 0) of per-class recall (macro average)."""
    values = [value for value in per_class_accuracy(confusion) if value is not None]
    if not values:
        raise ValueError("mean class accuracy of an empty confusion matrix (no videos)")
    return sum(values) / len(values)


def top5_defined(num_classes: int) -> bool:
    """Whether top-5 accuracy means anything (at least 5 classes)."""
    return num_classes >= TOP_K


def warn_if_no_top5(num_classes: int) -> None:
    """Warns once per call site that top-5 is not computed for fewer than 5 classes."""
    if not top5_defined(num_classes):
        warnings.warn(
            f"top-5 accuracy is not computed: only {num_classes} classes (every video would "
            "count as correct); 'top5' is left out of the logged metrics and is null in "
            "metrics.json",
            stacklevel=2,
        )


class ClassificationMetrics(nn.Module):
    """Accumulates video-level predictions; :meth:`compute` gives every metric at once.

    Holds a confusion matrix (top-1 and mean class accuracy come from it), a top-5 counter
    when there are at least 5 classes, and the mean loss.

    >>> metrics = ClassificationMetrics(num_classes=3)
    >>> probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    >>> metrics.update(probs, torch.tensor([0, 1]))
    >>> round(metrics.compute()["top1"], 3)
    0.5
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.confusion = MulticlassConfusionMatrix(num_classes)
        self.top5 = (
            MulticlassAccuracy(num_classes, top_k=TOP_K, average="micro")
            if top5_defined(num_classes)
            else None
        )
        self.loss = MeanMetric()

    def update(self, probs: Tensor, target: Tensor, log_probs: Tensor | None = None) -> None:
        """Adds a batch.

        Args:
            probs: (B, C) class probabilities of each video.
            target: (B,) int64 class ids.
            log_probs: (B, C) log of ``probs`` computed stably; default ``probs.log()``.
        """
        if log_probs is None:
            log_probs = probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
        self.confusion.update(probs, target)
        if self.top5 is not None:
            self.top5.update(probs, target)
        nll = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)  # (B,)
        self.loss.update(nll)

    def compute(self) -> dict[str, float | None]:
        """``top1``, ``top5`` (None with fewer than 5 classes), ``mean_class_accuracy``,
        ``loss``."""
        confusion = self.confusion.compute()
        total = confusion.sum()
        if total == 0:
            raise ValueError("no videos were evaluated: the metrics are undefined")
        return {
            "top1": (confusion.diagonal().sum().double() / total.double()).item(),
            "top5": None if self.top5 is None else self.top5.compute().item(),
            "mean_class_accuracy": mean_class_accuracy(confusion),
            "loss": self.loss.compute().item(),
        }

    def confusion_matrix(self) -> Tensor:
        """(C, C) int64 counts, rows = true class, columns = predicted class."""
        return self.confusion.compute().long()

    def reset(self) -> None:
        self.confusion.reset()
        if self.top5 is not None:
            self.top5.reset()
        self.loss.reset()


def save_confusion_matrix(
    confusion: Tensor, class_names: Sequence[str], directory: str | Path
) -> dict[str, Path]:
    """Writes ``confusion_matrix.csv``, ``confusion_matrix.png`` and ``per_class_accuracy.csv``.

    The CSV holds counts (rows = true class, columns = predicted class, both labelled with
    class names); the PNG shows each row normalised to 1 (per-class recall on the diagonal).

    Returns:
        The written paths by kind: ``"csv"``, ``"png"``, ``"per_class"``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    confusion = confusion.long().cpu()
    names = list(class_names)
    paths = {
        "csv": directory / "confusion_matrix.csv",
        "png": directory / "confusion_matrix.png",
        "per_class": directory / "per_class_accuracy.csv",
    }
    with open(paths["csv"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, confusion.tolist()):
            writer.writerow([name, *row])
    recalls = per_class_accuracy(confusion)
    with open(paths["per_class"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class_id", "class_name", "videos", "correct", "accuracy"])
        for class_id, name in enumerate(names):
            writer.writerow(
                [
                    class_id,
                    name,
                    int(confusion[class_id].sum()),
                    int(confusion[class_id, class_id]),
                    "" if recalls[class_id] is None else f"{recalls[class_id]:.6f}",
                ]
            )
    _plot_confusion(confusion, names, paths["png"])
    return paths


def _plot_confusion(confusion: Tensor, names: list[str], path: Path) -> None:
    counts = confusion.double()
    support = counts.sum(dim=1, keepdim=True)
    normalised = torch.where(support > 0, counts / support.clamp_min(1), 0.0).numpy()
    num_classes = len(names)
    size = min(4 + 0.3 * num_classes, 30)
    figure = new_figure(size, size)
    axes = figure.add_subplot()
    image = axes.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    if num_classes <= 60:
        axes.set_xticks(range(num_classes), names, rotation=90, fontsize=7)
        axes.set_yticks(range(num_classes), names, fontsize=7)
    if num_classes <= 20:
        for true_class in range(num_classes):
            for predicted in range(num_classes):
                count = int(confusion[true_class, predicted])
                if count:
                    colour = "white" if normalised[true_class, predicted] > 0.5 else "black"
                    axes.text(
                        predicted,
                        true_class,
                        count,
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=colour,
                    )
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"confusion matrix ({int(counts.sum())} videos; rows normalised)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
