"""The early-recognition section of the comparison report: top-1 with part of each video seen.

Each run's test writes its curve (:mod:`video_eleatt.training.online`: top-1 after the first
10 %, 20 %, ... 100 % of each test video's steps, no look-ahead, and its area, the mean of the
ten points) into ``metrics.json``; the runner copies it into ``result.json`` (``extra``).
Runs recorded before the curve existed are read from their ``test_*/metrics.json`` when it
has one, else left out (and counted). Per variant, every point and the area are given as the
mean over runs (seeds x splits) with a t interval at the report's level ``1 - alpha``
(clipped to [0, 1], the range of an accuracy: with two runs it can be wide).

Files: ``early_recognition.csv`` (variant, percent observed -- or ``area`` --, runs, mean,
interval) and ``figures/early_recognition.png`` (the mean curves with their intervals).

Where a class is defined by the order of what happens (the demo's classes), a model cannot
know it before the defining change has been seen: the curve should stay low early and rise
late. The section says at what share of the video each variant's mean curve first reaches
90 % of its final value, which makes that visible in one number.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from video_eleatt.compare.results import RunResult
from video_eleatt.compare.rows import ReportPlan
from video_eleatt.figures import new_figure, save_figure

EARLY_KEY = "early_recognition"
CSV_NAME = "early_recognition.csv"
FIGURE_NAME = "early_recognition.png"


@dataclass
class EarlyCurve:
    """One variant's early-recognition curve over its runs.

    Attributes:
        variant: Variant name.
        label: Display label.
        percents: Percent of each video observed, per point.
        runs: (R, P) top-1 of each run at each point.
        areas: (R,) each run's area.
    """

    variant: str
    label: str
    percents: list[int]
    runs: np.ndarray
    areas: np.ndarray

    def interval(self, values: np.ndarray, alpha: float) -> tuple[float, float, float]:
        """(mean, low, high) of per-run ``values`` (R,); the interval is NaN with one run."""
        mean = float(values.mean())
        if len(values) < 2:
            return mean, math.nan, math.nan
        half = scipy_stats.t.ppf(1 - alpha / 2, len(values) - 1) * values.std(ddof=1)
        half /= math.sqrt(len(values))
        return mean, max(0.0, mean - half), min(1.0, mean + half)  # accuracies: within [0, 1]

    def reaches(self, share: float = 0.9) -> int | None:
        """The first percent at which the mean curve reaches ``share`` of its last point."""
        means = self.runs.mean(axis=0)
        for percent, value in zip(self.percents, means):
            if value >= share * means[-1]:
                return percent
        return None


def run_curve(result: RunResult) -> dict[str, Any] | None:
    """A run's recorded curve: from ``result.json``, else its tested ``metrics.json``."""
    curve = result.extra.get(EARLY_KEY)
    if curve:
        return curve
    tested = result.extra.get("tested_checkpoint")
    for path in sorted(Path(result.run_dir).glob("test_*/metrics.json")) if result.run_dir else []:
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if metrics.get(EARLY_KEY) and (tested is None or metrics.get("checkpoint") == tested):
            return metrics[EARLY_KEY]
    return None


def early_curves(results: Sequence[RunResult], plan: ReportPlan) -> tuple[list[EarlyCurve], int]:
    """Per variant with at least one curve; and how many runs had none."""
    curves, without = [], 0
    for variant in plan.variants:
        recorded = []
        for result in results:
            if result.variant != variant:
                continue
            curve = run_curve(result)
            if curve is None:
                without += 1
            else:
                recorded.append(curve)
        if not recorded:
            continue
        percents = list(recorded[0]["percent_observed"])
        same = [c for c in recorded if list(c["percent_observed"]) == percents]
        without += len(recorded) - len(same)
        curves.append(
            EarlyCurve(
                variant=variant,
                label=plan.label(variant),
                percents=percents,
                runs=np.array([c["top1"] for c in same], dtype=np.float64),
                areas=np.array([c["area"] for c in same], dtype=np.float64),
            )
        )
    return curves, without


def write_early_recognition(
    results: Sequence[RunResult], plan: ReportPlan, output_dir: Path, figures_dir: Path
) -> tuple[list[Path], list[str]]:
    """Writes the CSV and figure; returns them and the report section's markdown lines."""
    curves, without = early_curves(results, plan)
    if not curves:
        return [], []
    level = f"{100 * (1 - plan.alpha):g} %"
    csv_path = output_dir / CSV_NAME
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "percent_observed", "runs", "mean_top1", "ci_low", "ci_high"])
        for curve in curves:
            points = [(p, curve.runs[:, k]) for k, p in enumerate(curve.percents)]
            for percent, values in [*points, ("area", curve.areas)]:
                mean, low, high = curve.interval(values, plan.alpha)
                writer.writerow([curve.variant, percent, len(values), *_cells(mean, low, high)])
    figure_path = _plot(curves, figures_dir / FIGURE_NAME, plan.alpha)
    shown = [p for p in curves[0].percents if p in (10, 20, 30, 50, 70, 90, 100)]
    lines = [
        "## Early recognition",
        "",
        "Top-1 (%) with only the first part of each test video seen: the running prediction "
        "after the first p % of its steps (no look-ahead), mean over runs with the "
        f"{level} t interval; area: the mean of the ten points (10 %, 20 %, ... 100 %).",
        "",
        "| Variant | "
        + " | ".join(f"{p} %" for p in shown)
        + " | Area | Reaches 90 % of its end at |",
        "|---|" + "---|" * (len(shown) + 2),
    ]
    for curve in curves:
        cells = [_percent(curve.runs[:, curve.percents.index(p)].mean()) for p in shown]
        mean, low, high = curve.interval(curve.areas, plan.alpha)
        area = _percent(mean) + ("" if math.isnan(low) else f" [{_percent(low)}, {_percent(high)}]")
        reached = curve.reaches()
        lines.append(
            f"| {curve.label} (n = {len(curve.areas)}) | " + " | ".join(cells)
            + f" | {area} | {'-' if reached is None else f'{reached} %'} |"
        )  # fmt: skip
    lines += [
        "",
        "A class defined by the order of what happens cannot be known before the change that "
        "defines it has been seen: its curve stays low early and rises late.",
    ]
    if without:
        lines.append(
            f"{without} run(s) recorded no curve (tested before early recognition existed): "
            "left out."
        )
    lines += ["", f"![early recognition](figures/{figure_path.name})", ""]
    return [csv_path, figure_path], lines


def _cells(mean: float, low: float, high: float) -> list[str]:
    return [f"{v:.6f}" if not math.isnan(v) else "" for v in (mean, low, high)]


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _plot(curves: list[EarlyCurve], path: Path, alpha: float) -> Path:
    figure = new_figure(6.0, 4.0)
    axes = figure.add_subplot()
    for number, curve in enumerate(curves):
        means, lows, highs = zip(
            *(curve.interval(curve.runs[:, k], alpha) for k in range(len(curve.percents)))
        )
        colour = f"C{number % 10}"
        axes.plot(
            curve.percents, 100 * np.array(means), marker="o", color=colour, label=curve.label
        )
        if not any(math.isnan(v) for v in lows):
            axes.fill_between(
                curve.percents, 100 * np.array(lows), 100 * np.array(highs), color=colour, alpha=0.2
            )
    axes.set_xlabel("% of each test video observed")
    axes.set_ylabel("top-1 (%)")
    axes.set_xlim(0, 105)
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(f"Early recognition: mean over runs, {100 * (1 - alpha):g} % t interval")
    return save_figure(figure, path)
