"""The comparison report: report.md, results.csv, summary.csv, comparisons.csv, figures/*.png.

Built from :class:`~video_eleatt.compare.results.RunResult` records only (no torch), so it can be
rebuilt at any time from the run directories. Missing or failed runs do not stop the report:
it is written with what exists and lists what is missing. The numbers are typed rows
(:mod:`~video_eleatt.compare.rows`); the markdown is built section by section
(:mod:`~video_eleatt.compare.markdown`); the figures are drawn by
:mod:`~video_eleatt.compare.plots`.

>>> # write_report(results, ReportPlan(name="demo", baseline="baseline_gru", ...), "out/")
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from video_eleatt.compare import plots
from video_eleatt.compare.early import write_early_recognition
from video_eleatt.compare.markdown import ReportContent, render_markdown
from video_eleatt.compare.results import RunResult
from video_eleatt.compare.rows import (
    POOLED,
    ComparisonRow,
    ReportPlan,
    RunKey,
    SummaryRow,
    compare_variants,
    run_name,
    summarize_variants,
)
from video_eleatt.compare.stats import summarize


@dataclass
class ReportOutcome:
    """What :func:`write_report` wrote and found.

    Attributes:
        output_dir: The report folder.
        files: Every file written.
        problems: Problems found (mismatched caches, missing baseline, missing runs, ...).
        missing_runs: Expected runs without a result.
        comparison_rows: Every variant vs its reference (the rows of comparisons.csv).
        summary_rows: Per variant, per split and over splits (the rows of summary.csv).
        verdicts: The top-1 verdict sentence per compared variant.
        comparable: False when runs cannot be compared at all (different caches or classes).
    """

    output_dir: Path
    files: list[Path]
    problems: list[str]
    missing_runs: list[RunKey]
    comparison_rows: list[ComparisonRow]
    summary_rows: list[SummaryRow]
    verdicts: dict[str, str]
    comparable: bool

    @property
    def comparisons(self) -> list[dict[str, Any]]:
        """The lines of comparisons.csv, as ``{column: value}``."""
        return [row.csv_row() for row in self.comparison_rows]


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
            groups.setdefault(json.dumps(value), []).append(run_name(result.key))
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
                f"same split and seed ({', '.join(run_name(k) for k in unpaired)}); they are "
                "left out of the paired tests"
            )
    if missing:
        problems.append(
            f"{len(missing)} of {len(expected)} planned runs are missing (listed below)"
        )
    summary_rows, summary_notes = summarize_variants(results, plan)
    comparison_rows = compare_variants(results, plan)[0] if comparable else []
    verdicts = {
        row.variant: row.verdict
        for row in comparison_rows
        if row.split == POOLED and row.metric == "top1"
    }

    files = [
        _write_results_csv(results, missing, plan, output_dir / "results.csv"),
        _write_csv([row.csv_row() for row in summary_rows], output_dir / "summary.csv"),
        _write_csv([row.csv_row() for row in comparison_rows], output_dir / "comparisons.csv"),
    ]
    files.append(_write_per_class_csv(results, plan, output_dir / "per_class.csv"))
    figures = _write_figures(results, plan, figures_dir, comparable)
    files += [path for _, path in figures]
    early_files, early_section = write_early_recognition(results, plan, output_dir, figures_dir)
    files += early_files

    content = ReportContent(
        results=results,
        plan=plan,
        summary_rows=summary_rows,
        comparison_rows=comparison_rows,
        problems=problems,
        summary_notes=summary_notes,
        missing=missing,
        figures=figures,
    )
    report_path = output_dir / "report.md"
    report_path.write_text("\n".join([render_markdown(content), "", *early_section]))
    files.insert(0, report_path)
    return ReportOutcome(
        output_dir=output_dir,
        files=files,
        problems=problems,
        missing_runs=missing,
        comparison_rows=comparison_rows,
        summary_rows=summary_rows,
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
