"""The comparison report: report.md, results.csv, summary.csv, comparisons.csv, figures/*.png.

Built from :class:`~video_eleatt.compare.results.RunResult` records only (no torch), so it can be
rebuilt at any time from the run directories. Missing or failed runs do not stop the report:
it is written with what exists and lists what is missing.

>>> # write_report(results, ReportPlan(name="demo", baseline="baseline_gru", ...), "out/")
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from video_eleatt.compare import plots
from video_eleatt.compare.results import RunResult
from video_eleatt.compare.stats import (
    PairedComparison,
    Summary,
    holm_adjust,
    paired_comparison,
    summarize,
    verdict,
)

# metric attribute -> label in tables and sentences
METRICS: dict[str, str] = {
    "test_top1": "top-1 accuracy",
    "test_top5": "top-5 accuracy",
    "test_mean_class_accuracy": "mean class accuracy",
}
SHORT_NAMES = {"test_top1": "top1", "test_top5": "top5", "test_mean_class_accuracy": "mca"}
ALL_SPLITS = "all"  # summary row averaged over splits
POOLED = "pooled"  # comparison over (split, seed) pairs of every split

RunKey = tuple[str, str, int]


@dataclass
class ReportPlan:
    """What the comparison was meant to contain (so that what is missing can be listed).

    Attributes:
        name: Comparison name (report title).
        baseline: Variant every other variant is compared with.
        variants: Variant names, in report order (baseline included).
        splits: Dataset splits, as strings.
        seeds: Seeds.
        labels: Variant name -> display label (defaults to the name).
        references: Variant name -> the variant it is compared with, where that is not the
            baseline (e.g. EleAtt-LSTM against the LSTM baseline of the same comparison).
        variant_configs: Variant name -> the exact options it overrides (shown in the report).
        base_configs: Training config file -> its text (shown in the report).
        failures: Run key -> error message, for runs that were attempted and failed.
        notes: Extra lines for the report's problems section (e.g. runs skipped on request).
        alpha: Significance level.
        confidence: Coverage of the bootstrap CIs.
        num_resamples: Bootstrap resamples.
    """

    name: str
    baseline: str
    variants: list[str]
    splits: list[str]
    seeds: list[int]
    labels: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    variant_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_configs: dict[str, str] = field(default_factory=dict)
    failures: dict[RunKey, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    alpha: float = 0.05
    confidence: float = 0.95
    num_resamples: int = 10_000

    def label(self, variant: str) -> str:
        """Display label of ``variant``."""
        return self.labels.get(variant) or variant

    def reference(self, variant: str) -> str:
        """The variant ``variant`` is compared with (the baseline unless set otherwise)."""
        return self.references.get(variant) or self.baseline

    @classmethod
    def from_results(cls, results: Sequence[RunResult], name: str, baseline: str) -> ReportPlan:
        """A plan inferred from existing results (for rebuilding a report from run folders)."""
        variants = list(dict.fromkeys(r.variant for r in results))
        if baseline in variants:
            variants.remove(baseline)
        return cls(
            name=name,
            baseline=baseline,
            variants=[baseline, *variants],
            splits=sorted({r.split for r in results}),
            seeds=sorted({r.seed for r in results}),
        )


@dataclass
class ReportOutcome:
    """What :func:`write_report` wrote and found.

    Attributes:
        output_dir: The report folder.
        files: Every file written.
        problems: Problems found (mismatched caches, missing baseline, missing runs, ...).
        missing_runs: Expected runs without a result.
        comparisons: Rows of comparisons.csv.
        summary: Rows of summary.csv.
        verdicts: The top-1 verdict sentence per compared variant.
        comparable: False when runs cannot be compared at all (different caches or classes).
    """

    output_dir: Path
    files: list[Path]
    problems: list[str]
    missing_runs: list[RunKey]
    comparisons: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    verdicts: dict[str, str]
    comparable: bool


def check_consistency(results: Sequence[RunResult]) -> list[str]:
    """Problems that make runs incomparable: different feature caches or class sets.

    Args:
        results: All run results of one comparison.

    Returns:
        One message per problem (empty when the runs are comparable); each names the groups.
    """
    problems = []
    for attribute, what in (
        ("cache_fingerprint", "feature caches"),
        ("class_names", "class sets"),
    ):
        groups: dict[str, list[str]] = {}
        for result in results:
            value = getattr(result, attribute)
            groups.setdefault(json.dumps(value), []).append(_run_name(result.key))
        if len(groups) > 1:
            detail = "; ".join(
                f"{_short(value)}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
                for value, names in groups.items()
            )
            problems.append(
                f"runs use {len(groups)} different {what} ({detail}); a comparison needs one "
                "feature cache and one class set for every run: rerun the odd runs on the same "
                "cache (delete their run folders) or compare them separately"
            )
    return problems


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _run_name(key: RunKey) -> str:
    variant, split, seed = key
    return f"{variant}/split-{split}/seed-{seed}"


def _metric(result: RunResult, metric: str) -> float | None:
    value = getattr(result, metric)
    return None if value is None else float(value)


def _percent(summary: Summary) -> str:
    return summary.format(scale=100.0, digits=2)


def _plain(summary: Summary, digits: int = 3) -> str:
    return summary.format(scale=1.0, digits=digits)


def summarize_variants(
    results: Sequence[RunResult], plan: ReportPlan
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of summary.csv: per variant, per split and averaged over splits.

    The "all" row averages each seed's metric over the splits first (the paper's "mean over
    splits"), then takes mean ± sample std over the seeds that have every split.

    Returns:
        ``(rows, notes)``; notes say which seeds were left out of an "all" row.
    """
    by_key = {r.key: r for r in results}
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for variant in plan.variants:
        runs = [r for r in results if r.variant == variant]
        if not runs:
            continue
        groups: list[tuple[str, list[list[RunResult]]]] = [
            (split, [[r] for r in runs if r.split == split]) for split in plan.splits
        ]
        if len(plan.splits) > 1:
            complete = []
            for seed in plan.seeds:
                seed_runs = [by_key.get((variant, split, seed)) for split in plan.splits]
                if all(seed_runs):
                    complete.append(seed_runs)
                elif any(seed_runs):
                    notes.append(
                        f"{plan.label(variant)}: seed {seed} lacks some splits, left out of the "
                        "average over splits"
                    )
            groups.append((ALL_SPLITS, complete))
        for split, run_groups in groups:
            if not run_groups:
                continue
            row: dict[str, Any] = {"variant": variant, "label": plan.label(variant), "split": split}
            for metric, short in SHORT_NAMES.items():
                values = []
                for group in run_groups:
                    per_split = [_metric(r, metric) for r in group]
                    if all(v is not None for v in per_split):
                        values.append(float(np.mean(per_split)))
                summary = summarize(values)
                row[f"{short}_mean_pct"] = summary.mean * 100.0
                row[f"{short}_std_pct"] = summary.std * 100.0
                row[f"{short}_n"] = summary.n
            flat = [r for group in run_groups for r in group]
            row["parameter_count"] = _common_value([r.parameter_count for r in flat])
            for attribute in ("train_time_per_epoch_s", "inference_sequences_per_s"):
                values = [getattr(r, attribute) for r in flat if getattr(r, attribute)]
                summary = summarize(values)
                row[f"{attribute}_mean"] = summary.mean
                row[f"{attribute}_std"] = summary.std
                row[f"{attribute}_n"] = summary.n
            row["num_runs"] = len(flat)
            rows.append(row)
    return rows, notes


def _common_value(values: list[Any]) -> Any:
    distinct = sorted(set(values))
    return distinct[0] if len(distinct) == 1 else "/".join(str(v) for v in distinct)


def compare_variants(
    results: Sequence[RunResult], plan: ReportPlan
) -> tuple[list[dict[str, Any]], dict[str, PairedComparison]]:
    """Rows of comparisons.csv: every variant vs the baseline, per metric, pooled and per split.

    Pairs are (split, seed) runs that exist for both the variant and the baseline. Holm-adjusted
    p-values are computed across variants, per metric, for the pooled comparisons.

    Returns:
        ``(rows, pooled_top1)`` where ``pooled_top1`` maps variant -> pooled top-1 comparison.
    """
    by_key = {r.key: r for r in results}
    rows: list[dict[str, Any]] = []
    pooled_top1: dict[str, PairedComparison] = {}
    for metric, metric_name in METRICS.items():
        pooled_rows = []
        for variant in plan.variants:
            if variant == plan.baseline:
                continue
            for split in [POOLED, *plan.splits] if len(plan.splits) > 1 else [POOLED]:
                pairs = []
                for candidate_split in plan.splits if split == POOLED else [split]:
                    for seed in plan.seeds:
                        run = by_key.get((variant, candidate_split, seed))
                        base = by_key.get((plan.reference(variant), candidate_split, seed))
                        if run is None or base is None:
                            continue
                        values = (_metric(run, metric), _metric(base, metric))
                        if None not in values:
                            pairs.append(values)
                if not pairs:
                    continue
                comparison = paired_comparison(
                    [v for v, _ in pairs],
                    [b for _, b in pairs],
                    alpha=plan.alpha,
                    confidence=plan.confidence,
                    num_resamples=plan.num_resamples,
                )
                sentence = verdict(
                    comparison,
                    plan.label(variant),
                    plan.label(plan.reference(variant)),
                    metric_name,
                )
                if split != POOLED:
                    sentence = f"[split {split}] {sentence}"
                row = {
                    "variant": variant,
                    "baseline": plan.reference(variant),
                    "metric": SHORT_NAMES[metric],
                    "split": split,
                    "n": comparison.n,
                    "mean_variant_pct": comparison.mean_variant * 100.0,
                    "mean_baseline_pct": comparison.mean_baseline * 100.0,
                    "mean_difference_pts": comparison.mean_difference * 100.0,
                    "std_difference_pts": comparison.std_difference * 100.0,
                    "ci_low_pts": _scaled(comparison.ci_low),
                    "ci_high_pts": _scaled(comparison.ci_high),
                    "t_statistic": comparison.t_statistic,
                    "t_pvalue": comparison.t_pvalue,
                    "holm_pvalue": None,
                    "wilcoxon_statistic": comparison.wilcoxon_statistic,
                    "wilcoxon_pvalue": comparison.wilcoxon_pvalue,
                    "significant": comparison.significant,
                    "verdict": sentence,
                    "notes": "; ".join(comparison.notes),
                }
                rows.append(row)
                if split == POOLED:
                    pooled_rows.append(row)
                    if metric == "test_top1":
                        pooled_top1[variant] = comparison
        for row, adjusted in zip(
            pooled_rows, holm_adjust([row["t_pvalue"] for row in pooled_rows])
        ):
            row["holm_pvalue"] = adjusted
    return rows, pooled_top1


def _scaled(value: float | None) -> float | None:
    return None if value is None else value * 100.0


def aggregate_curve(results: Sequence[RunResult], column: str) -> plots.Curve:
    """Mean ± sample std of a per-epoch history column over runs, aligned by epoch number."""
    per_epoch: dict[int, list[float]] = {}
    for result in results:
        for position, row in enumerate(result.history):
            value = row.get(column)
            if value is None or not np.isfinite(value):
                continue
            epoch = int(row.get("epoch", position))
            per_epoch.setdefault(epoch, []).append(float(value))
    epochs = sorted(per_epoch)
    summaries = [summarize(per_epoch[e]) for e in epochs]
    return plots.Curve(
        epochs=np.asarray(epochs, dtype=np.int64),
        mean=np.asarray([s.mean for s in summaries]),
        std=np.asarray([s.std for s in summaries]),
        count=np.asarray([s.n for s in summaries], dtype=np.int64),
    )


def per_class_differences(
    results: Sequence[RunResult], plan: ReportPlan, variant: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-class accuracy difference variant − baseline in points over paired runs.

    Returns:
        ``(mean (C,), std (C,), num_pairs)``; NaN for classes never tested.
    """
    by_key = {r.key: r for r in results}
    differences = []
    for (name, split, seed), run in by_key.items():
        base = by_key.get((plan.reference(variant), split, seed))
        if name != variant or base is None:
            continue
        if not run.per_class_accuracy or len(run.per_class_accuracy) != len(
            base.per_class_accuracy
        ):
            continue
        run_values = np.array([np.nan if v is None else v for v in run.per_class_accuracy])
        base_values = np.array([np.nan if v is None else v for v in base.per_class_accuracy])
        differences.append((run_values - base_values) * 100.0)  # (C,)
    if not differences:
        return np.zeros(0), np.zeros(0), 0
    stacked = np.stack(differences)  # (pairs, C)
    tested = ~np.all(np.isnan(stacked), axis=0)
    mean = np.full(stacked.shape[1], np.nan)
    std = np.full(stacked.shape[1], np.nan)
    mean[tested] = np.nanmean(stacked[:, tested], axis=0)
    if stacked.shape[0] > 1:
        counts = np.sum(~np.isnan(stacked[:, tested]), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            std_values = np.nanstd(stacked[:, tested], axis=0, ddof=1)
        std[tested] = np.where(counts > 1, std_values, np.nan)
    return mean, std, len(differences)


def write_report(
    results: Sequence[RunResult], plan: ReportPlan, output_dir: str | Path
) -> ReportOutcome:
    """Write the whole report folder.

    Args:
        results: Finished runs (any subset of the plan; others are listed as missing).
        plan: What was meant to be compared.
        output_dir: Report folder (created; existing report files are overwritten).

    Returns:
        What was written and found.
    """
    output_dir = Path(output_dir)
    figures_dir = output_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in figures_dir.glob("*.png"):
        stale.unlink()
    results = [r for r in results if r.variant in plan.variants]
    results.sort(key=lambda r: (plan.variants.index(r.variant), r.split, r.seed))
    present = {r.key for r in results}

    problems = check_consistency(results)
    comparable = not problems
    expected = [(v, s, seed) for v in plan.variants for s in plan.splits for seed in plan.seeds]
    missing = [key for key in expected if key not in present]
    if plan.baseline not in plan.variants:
        problems.append(
            f"baseline {plan.baseline!r} is not among the variants {plan.variants}: "
            "no variant can be compared; add it to `variants` or set `baseline`"
        )
        comparable = False
    elif not any(r.variant == plan.baseline for r in results):
        problems.append(
            f"no finished run of the baseline {plan.label(plan.baseline)!r}: no comparison "
            "is possible until it has run"
        )
    for variant in plan.variants:
        if variant == plan.baseline:
            continue
        unpaired = [
            r.key
            for r in results
            if r.variant == variant and (plan.reference(variant), r.split, r.seed) not in present
        ]
        if unpaired:
            problems.append(
                f"{plan.label(variant)}: {len(unpaired)} run(s) without the "
                f"{plan.label(plan.reference(variant))} run of the "
                f"same split and seed ({', '.join(_run_name(k) for k in unpaired)}); they are "
                "left out of the paired tests"
            )
    if missing:
        problems.append(
            f"{len(missing)} of {len(expected)} planned runs are missing (listed below)"
        )
    summary_rows, summary_notes = summarize_variants(results, plan)
    comparison_rows, pooled_top1 = compare_variants(results, plan) if comparable else ([], {})
    verdicts = {
        row["variant"]: row["verdict"]
        for row in comparison_rows
        if row["split"] == POOLED and row["metric"] == "top1"
    }

    files = [
        _write_results_csv(results, missing, plan, output_dir / "results.csv"),
        _write_csv(summary_rows, output_dir / "summary.csv"),
        _write_csv(comparison_rows, output_dir / "comparisons.csv"),
    ]
    files.append(_write_per_class_csv(results, plan, output_dir / "per_class.csv"))
    figures = _write_figures(results, plan, figures_dir, comparable)
    files += [path for _, path in figures]

    markdown = _render_markdown(
        results,
        plan,
        summary_rows,
        comparison_rows,
        pooled_top1,
        problems,
        summary_notes,
        missing,
        figures,
        comparable,
    )
    report_path = output_dir / "report.md"
    report_path.write_text(markdown)
    files.insert(0, report_path)
    return ReportOutcome(
        output_dir=output_dir,
        files=files,
        problems=problems,
        missing_runs=missing,
        comparisons=comparison_rows,
        summary=summary_rows,
        verdicts=verdicts,
        comparable=comparable,
    )


RESULT_COLUMNS = (
    "variant",
    "split",
    "seed",
    "status",
    "test_top1",
    "test_top5",
    "test_mean_class_accuracy",
    "test_loss",
    "parameter_count",
    "num_epochs",
    "final_train_loss",
    "final_val_loss",
    "best_val_top1",
    "train_time_per_epoch_s",
    "inference_sequences_per_s",
    "num_test_videos",
    "device",
    "cache_fingerprint",
    "run_dir",
    "error",
)


def _write_results_csv(
    results: Sequence[RunResult], missing: Sequence[RunKey], plan: ReportPlan, path: Path
) -> Path:
    rows = []
    for result in results:
        history = result.history
        val_top1 = [row["val_top1"] for row in history if row.get("val_top1") is not None]
        rows.append(
            {
                "variant": result.variant,
                "split": result.split,
                "seed": result.seed,
                "status": "finished",
                "test_top1": result.test_top1,
                "test_top5": result.test_top5,
                "test_mean_class_accuracy": result.test_mean_class_accuracy,
                "test_loss": result.test_loss,
                "parameter_count": result.parameter_count,
                "num_epochs": len(history),
                "final_train_loss": _last(history, "train_loss"),
                "final_val_loss": _last(history, "val_loss"),
                "best_val_top1": max(val_top1) if val_top1 else None,
                "train_time_per_epoch_s": result.train_time_per_epoch_s,
                "inference_sequences_per_s": result.inference_sequences_per_s,
                "num_test_videos": result.num_test_videos,
                "device": result.device,
                "cache_fingerprint": result.cache_fingerprint,
                "run_dir": result.run_dir,
                "error": "",
            }
        )
    for key in missing:
        variant, split, seed = key
        error = plan.failures.get(key, "")
        rows.append(
            {
                "variant": variant,
                "split": split,
                "seed": seed,
                "status": "failed" if error else "missing",
                "error": error,
            }
        )
    return _write_csv(rows, path, columns=RESULT_COLUMNS)


def _last(history: list[dict[str, float]], column: str) -> float | None:
    values = [row[column] for row in history if row.get(column) is not None]
    return values[-1] if values else None


def _write_csv(
    rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str] | None = None
) -> Path:
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return path


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not np.isfinite(value) else f"{value:.6g}"
    return value


def _write_per_class_csv(results: Sequence[RunResult], plan: ReportPlan, path: Path) -> Path:
    class_names = next((r.class_names for r in results if r.class_names), [])
    rows = []
    for class_id, class_name in enumerate(class_names):
        row: dict[str, Any] = {"class_id": class_id, "class_name": class_name}
        for variant in plan.variants:
            values = [
                r.per_class_accuracy[class_id]
                for r in results
                if r.variant == variant
                and len(r.per_class_accuracy) == len(class_names)
                and r.per_class_accuracy[class_id] is not None
            ]
            row[f"{variant}_mean_pct"] = float(np.mean(values)) * 100.0 if values else None
        rows.append(row)
    columns = ["class_id", "class_name", *(f"{v}_mean_pct" for v in plan.variants)]
    return _write_csv(rows, path, columns=columns)


def _write_figures(
    results: Sequence[RunResult], plan: ReportPlan, figures_dir: Path, comparable: bool
) -> list[tuple[str, Path]]:
    figures: list[tuple[str, Path]] = []
    by_variant = {v: [r for r in results if r.variant == v] for v in plan.variants}
    by_variant = {v: runs for v, runs in by_variant.items() if runs}
    if not by_variant:
        return figures

    def curves(column: str) -> dict[str, plots.Curve]:
        return {
            plan.label(v): aggregate_curve(runs, column)
            for v, runs in by_variant.items()
            if any(row.get(column) is not None for r in runs for row in r.history)
        }

    def curve_figure(
        columns: dict[str, str], name: str, ylabel: str, title: str, caption: str, **options: Any
    ) -> None:
        """One panel per column (``{panel title: history column}``) that some run logged."""
        panels = {panel: c for panel, column in columns.items() if (c := curves(column))}
        if panels:
            path = plots.plot_curves(
                panels,
                figures_dir / name,
                ylabels=dict.fromkeys(panels, ylabel),
                title=f"{title} per epoch: mean ± std over runs (seeds and splits)",
                **options,
            )
            figures.append((caption, path))

    curve_figure(
        {"training loss": "train_loss", "validation loss": "val_loss"},
        "loss_curves.png",
        "cross-entropy",
        "Loss",
        "Training and validation loss per epoch (convergence)",
    )
    curve_figure(
        {"validation top-1": "val_top1", "training top-1": "train_top1"},
        "accuracy_curves.png",
        "accuracy",
        "Accuracy",
        "Validation (and training) accuracy per epoch",
        bounds=(0.0, 1.0),
    )

    summaries = [(v, summarize([r.test_top1 for r in runs])) for v, runs in by_variant.items()]
    path = plots.plot_metric_bars(
        [plan.label(v) for v, _ in summaries],
        [s.mean * 100.0 for _, s in summaries],
        [s.std * 100.0 for _, s in summaries],
        [s.n for _, s in summaries],
        figures_dir / "test_top1.png",
        ylabel="test top-1 (%)",
        title="Test top-1 per variant (mean ± std over seeds and splits)",
    )
    figures.append(("Test top-1 per variant", path))

    class_names = next((r.class_names for r in results if r.class_names), [])
    if comparable and class_names:
        for variant in by_variant:
            if variant == plan.baseline:
                continue
            mean, std, num_pairs = per_class_differences(results, plan, variant)
            if num_pairs == 0:
                continue
            path = plots.plot_per_class_difference(
                class_names,
                mean,
                std,
                num_pairs,
                figures_dir / f"per_class_difference_{_file_name(variant)}.png",
                title=(
                    f"Per-class accuracy: {plan.label(variant)} − "
                    f"{plan.label(plan.reference(variant))}"
                ),
            )
            figures.append(
                (
                    f"Per-class accuracy difference, {plan.label(variant)} − "
                    f"{plan.label(plan.reference(variant))}",
                    path,
                )
            )
    for variant, runs in by_variant.items():
        matrices = [np.asarray(r.confusion_matrix) for r in runs if r.confusion_matrix]
        shapes = {m.shape for m in matrices}
        if not matrices or len(shapes) != 1:
            continue
        total = np.sum(matrices, axis=0)  # (C, C) summed over runs
        names = (
            class_names
            if len(class_names) == total.shape[0]
            else [str(i) for i in range(total.shape[0])]
        )
        path = plots.plot_confusion_matrix(
            total,
            names,
            figures_dir / f"confusion_{_file_name(variant)}.png",
            title=f"{plan.label(variant)}: confusion (summed over {len(matrices)} runs)",
        )
        figures.append((f"Confusion matrix, {plan.label(variant)}", path))
    return figures


def _file_name(variant: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in variant)


def _render_markdown(
    results: Sequence[RunResult],
    plan: ReportPlan,
    summary_rows: list[dict[str, Any]],
    comparison_rows: list[dict[str, Any]],
    pooled_top1: dict[str, PairedComparison],
    problems: list[str],
    summary_notes: list[str],
    missing: list[RunKey],
    figures: list[tuple[str, Path]],
    comparable: bool,
) -> str:
    lines: list[str] = []
    add = lines.append
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    add(f"# Comparison: {plan.name}")
    add("")
    add(
        f"Generated {now} by `video-eleatt compare`. Baseline: **{plan.label(plan.baseline)}**. "
        f"Variants: {', '.join(plan.label(v) for v in plan.variants)}. "
        f"Splits: {', '.join(_split_title(s) for s in plan.splits)}. "
        f"Seeds: {', '.join(str(s) for s in plan.seeds)}. "
        f"Finished runs: {len(results)} of "
        f"{len(plan.variants) * len(plan.splits) * len(plan.seeds)}."
    )
    add("")
    add("## Verdict (top-1, paired over seeds and splits)")
    add("")
    if comparison_rows:
        for row in comparison_rows:
            if row["split"] == POOLED and row["metric"] == "top1":
                add(f"- {row['verdict']}")
        mca = [row for row in comparison_rows if row["split"] == POOLED and row["metric"] == "mca"]
        for row in mca:
            add(f"- {row['verdict']}")
    else:
        add("- No comparison could be made (see Problems).")
    add("")

    if problems or summary_notes:
        add("## Problems")
        add("")
        for problem in problems + summary_notes:
            add(f"- {problem}")
        if missing:
            add("")
            add("Missing runs:")
            add("")
            for key in missing:
                reason = plan.failures.get(key)
                add(f"- `{_run_name(key)}`: {'failed: ' + reason if reason else 'not run'}")
        add("")

    add("## Results per variant")
    add("")
    add(
        "Test accuracy in %, mean ± sample std (ddof = 1) over seeds, n stated. "
        "Top-1 is micro (correct videos / all videos); mean class accuracy is macro "
        "(mean over classes of per-class recall)."
        + (
            " Top-5 is n/a where there are fewer than 5 classes."
            if any(r.test_top5 is None for r in results)
            else ""
        )
    )
    add("")
    for split in ([ALL_SPLITS] if len(plan.splits) > 1 else []) + plan.splits:
        rows = [row for row in summary_rows if row["split"] == split]
        if not rows:
            continue
        heading = (
            "Averaged over splits (each seed's mean over splits, then mean ± std over seeds)"
            if split == ALL_SPLITS
            else _split_title(split).capitalize()
        )
        add(f"### {heading}")
        add("")
        add(
            "| variant | top-1 (%) | top-5 (%) | mean class acc. (%) | parameters "
            "| train s/epoch | inference seq/s |"
        )
        add("|---|---|---|---|---|---|---|")
        for row in rows:
            cells = [row["label"]]
            for short in SHORT_NAMES.values():
                cells.append(
                    _percent(
                        Summary(
                            row[f"{short}_mean_pct"] / 100.0,
                            row[f"{short}_std_pct"] / 100.0,
                            row[f"{short}_n"],
                        )
                    )
                )
            count = row["parameter_count"]
            cells.append(f"{count:,}" if isinstance(count, int) else str(count))
            for attribute, digits in (
                ("train_time_per_epoch_s", 2),
                ("inference_sequences_per_s", 0),
            ):
                cells.append(
                    _plain(
                        Summary(
                            row[f"{attribute}_mean"],
                            row[f"{attribute}_std"],
                            row[f"{attribute}_n"],
                        ),
                        digits=digits,
                    )
                )
            add("| " + " | ".join(cells) + " |")
        add("")

    add("## Variants vs the baseline")
    add("")
    if not comparison_rows:
        add("No paired comparison was computed (see Problems).")
        add("")
    else:
        add(
            "Differences are variant − reference (the column `vs`; the baseline "
            f"{plan.label(plan.baseline)} unless the config names another) in percentage points "
            "over runs paired by (split, seed). CI: percentile bootstrap "
            f"({plan.num_resamples:,} resamples) of the mean paired difference. "
            f"Significance: paired t-test at alpha = {plan.alpha:g}; Holm-adjusted p over the "
            "variants is given for the pooled rows when there is more than one variant. "
            "Wilcoxon signed-rank only where n >= 6 (below that it cannot reach p < 0.05)."
        )
        add("")
        add(
            "| metric | variant | vs | split | n | mean diff (pts) | "
            f"{plan.confidence * 100:g}% CI (pts) | t-test p | Holm p | Wilcoxon p | significant |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for row in comparison_rows:
            ci = (
                f"[{row['ci_low_pts']:+.2f}, {row['ci_high_pts']:+.2f}]"
                if row["ci_low_pts"] is not None
                else "n/a"
            )
            add(
                f"| {row['metric']} | {plan.label(row['variant'])} | {plan.label(row['baseline'])} "
                f"| {row['split']} | {row['n']} "
                f"| {row['mean_difference_pts']:+.2f} | {ci} | {_p(row['t_pvalue'])} "
                f"| {_p(row['holm_pvalue'])} | {_p(row['wilcoxon_pvalue'])} "
                f"| {'yes' if row['significant'] else 'no'} |"
            )
        add("")
        notes = sorted({row["notes"] for row in comparison_rows if row["notes"]})
        for note in notes:
            add(f"- Note: {note}")
        if notes:
            add("")
        per_split = [
            row["verdict"]
            for row in comparison_rows
            if row["split"] != POOLED and row["metric"] == "top1"
        ]
        if per_split:
            add("Per-split verdicts (top-1):")
            add("")
            for sentence in per_split:
                add(f"- {sentence}")
            add("")

    if figures:
        add("## Figures")
        add("")
        for caption, path in figures:
            add(f"### {caption}")
            add("")
            add(f"![{caption}](figures/{path.name})")
            add("")

    add("## Test protocol and data")
    add("")
    protocols = {json.dumps(r.test_protocol, sort_keys=True) for r in results}
    caches = sorted({(r.cache_dir, r.cache_fingerprint) for r in results})
    class_counts = sorted({len(r.class_names) for r in results})
    for cache_dir, fingerprint in caches:
        add(f"- Feature cache: `{cache_dir}` (config fingerprint `{fingerprint}`)")
    add(f"- Classes: {', '.join(str(c) for c in class_counts)}")
    tested = sorted({(r.split, r.num_test_videos) for r in results})
    add(
        "- Test videos per split: "
        + ", ".join(f"{_split_title(split)}: {count}" for split, count in tested)
    )
    for protocol in sorted(protocols):
        add(f"- Test protocol: {_describe_protocol(json.loads(protocol))}")
    if any((r.test_protocol or {}).get("checkpoint") == "last" for r in results):
        add(
            "- The last epoch's checkpoint is tested where the validation videos are the test "
            "videos: picking the best epoch on them would select on the test set."
        )
    for note in plan.notes:
        add(f"- {note}")
    devices = sorted({r.device for r in results if r.device})
    if devices:
        add(f"- Devices: {', '.join(devices)}")
    add(
        "- Inference sequences/s: test-set videos classified per second by the model alone in "
        "eval mode (batches as in testing, features already in memory, no data loading)."
    )
    add("")

    add("## Exact configurations")
    add("")
    for path, text in plan.base_configs.items():
        add(f"Base training config `{path}`:")
        add("")
        add("```yaml")
        add(text.rstrip())
        add("```")
        add("")
    for variant in plan.variants:
        add(f"### {plan.label(variant)} (`{variant}`)")
        add("")
        if variant in plan.variant_configs:
            add("Overrides of the base config:")
            add("")
            add("```json")
            add(json.dumps(plan.variant_configs[variant], indent=2, sort_keys=True))
            add("```")
            add("")
        model_configs = {
            json.dumps(r.model_config, sort_keys=True) for r in results if r.variant == variant
        }
        for model_config in sorted(model_configs):
            add("Model as run:")
            add("")
            add("```json")
            add(json.dumps(json.loads(model_config), indent=2, sort_keys=True))
            add("```")
            add("")
        runs = [r for r in results if r.variant == variant]
        if runs:
            add(f"Run folders (each holds its `config.yaml`): `{Path(runs[0].run_dir).parent}`")
            add("")

    add("## Method")
    add("")
    add(
        "Each variant is trained once per (split, seed) with the same training code as "
        "`video-eleatt fit`, on the same feature cache; a seed fixes initialisation and data "
        "order, so run i of a variant and run i of the baseline see the same batches. "
        "Spread is the sample standard deviation (ddof = 1). Paired tests use the "
        "differences of matching runs; pooling splits treats each (split, seed) pair as one "
        "observation. A non-significant result means the runs cannot tell the variants apart "
        "at this n, not that they are equal; the CI says how large a difference remains "
        "plausible. With few pairs (fewer than about 10) the percentile bootstrap interval is "
        "narrower than it should be (it cannot reach beyond the observed differences): read it "
        "together with the t-test."
    )
    add("")
    add("## Files")
    add("")
    add("- `results.csv`: one row per planned run (status finished / failed / missing).")
    add("- `summary.csv`: per variant, per split and averaged over splits (accuracy in %).")
    add("- `comparisons.csv`: every variant vs the baseline, per metric, pooled and per split.")
    add("- `per_class.csv`: mean per-class accuracy per variant (%).")
    add("- `figures/`: the PNG figures above.")
    add("")
    return "\n".join(lines)


def _describe_protocol(protocol: dict[str, Any]) -> str:
    """One readable line from a run's recorded test protocol."""
    if not protocol:
        return "not recorded"
    parts = [str(protocol.get("description") or protocol)]
    if protocol.get("checkpoint"):
        parts.append(f"checkpoint tested: {protocol['checkpoint']}")
    if protocol.get("test_subset"):
        parts.append(f"test videos: {protocol['test_subset']}")
    if protocol.get("validation_subset"):
        parts.append(f"validation videos: {protocol['validation_subset']}")
    if protocol.get("train_sampling"):
        parts.append(
            f"training sampling: {protocol['train_sampling']}"
            + (f" ({protocol['num_steps']} steps)" if protocol.get("num_steps") else "")
        )
    return "; ".join(parts)


def _split_title(split: str) -> str:
    return "the base config's split" if split == "default" else f"split {split}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
