"""Online recognition in training and testing: per-step supervision and early-recognition curves.

**Per-step supervision** (``model.step_supervision``, our addition): a model trained only on
each clip's final prediction has no reason to be right before the clip ends. With
``"uniform"`` the loss of a video is the mean over its valid steps of the cross-entropy of the
running prediction (:meth:`~video_eleatt.models.classifier.SequenceClassifier.running_scores`);
with ``"late"`` step ``t`` (0-based) of a video of ``L`` steps weighs ``(t + 1) / sum``, so the
last steps count most while early ones still count. ``"none"`` (the default) is the paper's
final-prediction loss, computed exactly as before.

**Early recognition**: top-1 accuracy when only the first part of each test video has been
seen. At ``p`` percent (10, 20, ..., 100) a video of ``L`` steps is judged on the running
prediction after its first ``max(1, floor(p * L / 100))`` steps: never more than ``p`` percent
of it, no look-ahead (``running_scores`` at a step depends on no later step). At 100 % this is
the ordinary top-1. With clip evaluation (``eval_sampling: clips``) each clip is cut to the
same share of its steps and the clips' probabilities are averaged, as the test does.

The **area** under the curve is the mean of its ten points: each point stands for a tenth of
the video (a rectangle rule over (0, 1]). A model that is at chance ``1/C`` until it has seen
the whole video has area ``(9 / C + 1) / 10``; one that is right from the first tenth has 1.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from video_eleatt.figures import new_figure, save_figure

StepSupervision = Literal["none", "uniform", "late"]
STEP_SUPERVISIONS = ("none", "uniform", "late")
# Percent of each video observed at the points of the early-recognition curve.
EARLY_PERCENTS: tuple[int, ...] = tuple(range(10, 101, 10))
EARLY_CSV = "early_recognition.csv"
EARLY_PNG = "early_recognition.png"


def step_losses(
    running: Tensor, labels: Tensor, lengths: Tensor | None, weighting: StepSupervision
) -> Tensor:
    """Per-video loss (B,) over the valid steps of running logits.

    Args:
        running: (B, T, C) running logits (zero at padded steps).
        labels: (B,) class ids.
        lengths: (B,) valid lengths; None means all T steps.
        weighting: "uniform" (mean over steps) or "late" (step t weighs t + 1).
    """
    if weighting not in ("uniform", "late"):
        raise ValueError(f"step supervision {weighting!r}: expected 'uniform' or 'late'")
    batch, steps, num_classes = running.shape
    per_step = F.cross_entropy(
        running.float().reshape(-1, num_classes),
        labels.repeat_interleave(steps),
        reduction="none",
    ).view(batch, steps)  # (B, T)
    positions = torch.arange(steps, device=running.device)
    weights = torch.ones(batch, steps, device=running.device)
    if weighting == "late":
        weights = weights * (positions + 1).float()
    if lengths is not None:
        weights = torch.where(positions < lengths.unsqueeze(1), weights, 0.0)
    return (per_step * weights).sum(dim=1) / weights.sum(dim=1)


def observed_steps(lengths: Tensor, percent: int) -> Tensor:
    """Steps seen with ``percent`` of each video observed: max(1, floor(percent * L / 100))."""
    return ((lengths * percent) // 100).clamp(min=1)


def clip_running_log_probs(running: Tensor, num_clips: int) -> Tensor:
    """Running log-probabilities (B, t, C) of a video from its clips' running logits
    (B * num_clips, t, C): the log of the mean over clips of the softmax at each step."""
    log_probs = F.log_softmax(running.float(), dim=2)
    if num_clips == 1:
        return log_probs
    log_probs = log_probs.view(-1, num_clips, *log_probs.shape[1:])  # (B, N, t, C)
    return torch.logsumexp(log_probs, dim=1) - torch.log(torch.tensor(float(num_clips)))


class EarlyRecognition(Metric):
    """Correct videos at each point of the early-recognition curve (summed over processes).

    >>> metric = EarlyRecognition()
    >>> running = torch.zeros(1, 4, 2); running[0, 3, 1] = 1.0   # right only at the end
    >>> metric.update(running, torch.tensor([4]), torch.tensor([1]))
    >>> metric.compute()["top1"][-2:]
    [0.0, 1.0]
    """

    full_state_update = False

    def __init__(self, percents: Sequence[int] = EARLY_PERCENTS) -> None:
        super().__init__()
        self.percents = tuple(int(p) for p in percents)
        self.add_state("correct", torch.zeros(len(self.percents)), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, running: Tensor, lengths: Tensor, labels: Tensor) -> None:
        """Adds videos: running scores (B, T, C), valid lengths (B,), labels (B,)."""
        rows = torch.arange(running.shape[0], device=running.device)
        lengths = lengths.to(running.device)
        for k, percent in enumerate(self.percents):
            seen = observed_steps(lengths, percent)
            predicted = running[rows, seen - 1].argmax(dim=1)
            self.correct[k] += (predicted == labels.to(running.device)).sum()
        self.total += running.shape[0]

    def compute(self) -> dict[str, Any]:
        """``{"percent_observed": [...], "top1": [...], "area": float, "num_videos": int}``."""
        total = float(self.total)
        if total == 0:
            raise ValueError("early recognition of no videos: nothing was evaluated")
        top1 = [float(c) / total for c in self.correct]
        return {
            "percent_observed": list(self.percents),
            "top1": top1,
            "area": curve_area(top1),
            "num_videos": int(total),
        }


def curve_area(top1: Sequence[float]) -> float:
    """The area under an early-recognition curve of equally spaced points: their mean."""
    return float(sum(top1) / len(top1))


def save_early_recognition(
    curve: dict[str, Any], directory: str | Path, title: str = "early recognition"
) -> dict[str, Path]:
    """Writes ``early_recognition.csv`` (percent_observed, top1) and its figure.

    Returns:
        The paths by kind, ``"csv"`` and ``"png"``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"csv": directory / EARLY_CSV, "png": directory / EARLY_PNG}
    with open(paths["csv"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["percent_observed", "top1"])
        for percent, value in zip(curve["percent_observed"], curve["top1"]):
            writer.writerow([percent, f"{value:.6f}"])
    figure = new_figure(5.0, 3.4)
    axes = figure.add_subplot()
    axes.plot(curve["percent_observed"], [100 * v for v in curve["top1"]], marker="o")
    axes.set_xlabel("% of each video observed")
    axes.set_ylabel("top-1 (%)")
    axes.set_xlim(0, 105)
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.set_title(f"{title} (area {100 * curve['area']:.1f} %)")
    save_figure(figure, paths["png"])
    return paths
