"""The numbers of a comparison report, as typed rows: what was planned (:class:`ReportPlan`),
each variant's summary (:class:`SummaryRow`) and each paired comparison (:class:`ComparisonRow`).

Built from :class:`~video_eleatt.compare.results.RunResult` records only. One row of each kind
is one line of ``summary.csv`` / ``comparisons.csv`` (:meth:`SummaryRow.csv_row`,
:meth:`ComparisonRow.csv_row`) and one line of a table in ``report.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

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
# per-run timings summarised per variant, with the digits they are shown with
TIMINGS = {"train_time_per_epoch_s": 2, "inference_sequences_per_s": 0}
ALL_SPLITS = "all"  # summary row averaged over splits
POOLED = "pooled"  # comparison over (split, seed) pairs of every split

RunKey = tuple[str, str, int]


def run_name(key: RunKey) -> str:
    """``<variant>/split-<split>/seed-<seed>``."""
    variant, split, seed = key
    return f"{variant}/split-{split}/seed-{seed}"


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
class SummaryRow:
    """One variant on one split, or averaged over splits (``split == "all"``).

    Attributes:
        variant: Variant key.
        label: Display label.
        split: Split label, or ``"all"``.
        accuracy_pct: Short metric name (``top1``, ``top5``, ``mca``) -> mean ± sample std
            over seeds, in percent.
        parameter_count: Parameters of the variant's model (``"a/b"`` when runs differ).
        timings: ``train_time_per_epoch_s`` and ``inference_sequences_per_s`` -> mean ± std
            over the runs that recorded them.
        num_runs: Runs that went into the row.
    """

    variant: str
    label: str
    split: str
    accuracy_pct: dict[str, Summary]
    parameter_count: int | str
    timings: dict[str, Summary]
    num_runs: int

    def csv_row(self) -> dict[str, Any]:
        """The row of summary.csv (columns in file order)."""
        row: dict[str, Any] = {"variant": self.variant, "label": self.label, "split": self.split}
        for short, summary in self.accuracy_pct.items():
            row[f"{short}_mean_pct"] = summary.mean
            row[f"{short}_std_pct"] = summary.std
            row[f"{short}_n"] = summary.n
        row["parameter_count"] = self.parameter_count
        for attribute, summary in self.timings.items():
            row[f"{attribute}_mean"] = summary.mean
            row[f"{attribute}_std"] = summary.std
            row[f"{attribute}_n"] = summary.n
        row["num_runs"] = self.num_runs
        return row


@dataclass
class ComparisonRow:
    """One variant against its reference on one metric, pooled over splits or on one split.

    Percentages and points are accuracy x 100; ``holm_pvalue`` is set on pooled rows only.
    """

    variant: str
    baseline: str
    metric: str
    split: str
    n: int
    mean_variant_pct: float
    mean_baseline_pct: float
    mean_difference_pts: float
    std_difference_pts: float
    ci_low_pts: float | None
    ci_high_pts: float | None
    t_statistic: float | None
    t_pvalue: float | None
    holm_pvalue: float | None
    wilcoxon_statistic: float | None
    wilcoxon_pvalue: float | None
    significant: bool
    verdict: str
    notes: str

    def csv_row(self) -> dict[str, Any]:
        """The row of comparisons.csv (columns in file order)."""
        return asdict(self)


def summarize_variants(
    results: Sequence[RunResult], plan: ReportPlan
) -> tuple[list[SummaryRow], list[str]]:
    """Per variant: one row per split and one averaged over splits (the rows of summary.csv).

    The "all" row averages each seed's metric over the splits first (the paper's "mean over
    splits"), then takes mean ± sample std over the seeds that have every split.

    Returns:
        ``(rows, notes)``; notes say which seeds were left out of an "all" row.
    """
    by_key = {r.key: r for r in results}
    rows: list[SummaryRow] = []
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
            accuracy_pct = {}
            for metric, short in SHORT_NAMES.items():
                values = []
                for group in run_groups:
                    per_split = [_metric(r, metric) for r in group]
                    if all(v is not None for v in per_split):
                        values.append(float(np.mean(per_split)))
                summary = summarize(values)
                accuracy_pct[short] = Summary(summary.mean * 100.0, summary.std * 100.0, summary.n)
            flat = [r for group in run_groups for r in group]
            timings = {
                attribute: summarize([getattr(r, attribute) for r in flat if getattr(r, attribute)])
                for attribute in TIMINGS
            }
            rows.append(
                SummaryRow(
                    variant=variant,
                    label=plan.label(variant),
                    split=split,
                    accuracy_pct=accuracy_pct,
                    parameter_count=_common_value([r.parameter_count for r in flat]),
                    timings=timings,
                    num_runs=len(flat),
                )
            )
    return rows, notes


def _metric(result: RunResult, metric: str) -> float | None:
    value = getattr(result, metric)
    return None if value is None else float(value)


def _common_value(values: list[Any]) -> Any:
    distinct = sorted(set(values))
    return distinct[0] if len(distinct) == 1 else "/".join(str(v) for v in distinct)


def compare_variants(
    results: Sequence[RunResult], plan: ReportPlan
) -> tuple[list[ComparisonRow], dict[str, PairedComparison]]:
    """Every variant vs its reference, per metric, pooled and per split (comparisons.csv).

    Pairs are (split, seed) runs that exist for both the variant and the baseline. Holm-adjusted
    p-values are computed across variants, per metric, for the pooled comparisons.

    Returns:
        ``(rows, pooled_top1)`` where ``pooled_top1`` maps variant -> pooled top-1 comparison.
    """
    by_key = {r.key: r for r in results}
    rows: list[ComparisonRow] = []
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
                row = ComparisonRow(
                    variant=variant,
                    baseline=plan.reference(variant),
                    metric=SHORT_NAMES[metric],
                    split=split,
                    n=comparison.n,
                    mean_variant_pct=comparison.mean_variant * 100.0,
                    mean_baseline_pct=comparison.mean_baseline * 100.0,
                    mean_difference_pts=comparison.mean_difference * 100.0,
                    std_difference_pts=comparison.std_difference * 100.0,
                    ci_low_pts=_scaled(comparison.ci_low),
                    ci_high_pts=_scaled(comparison.ci_high),
                    t_statistic=comparison.t_statistic,
                    t_pvalue=comparison.t_pvalue,
                    holm_pvalue=None,
                    wilcoxon_statistic=comparison.wilcoxon_statistic,
                    wilcoxon_pvalue=comparison.wilcoxon_pvalue,
                    significant=comparison.significant,
                    verdict=sentence,
                    notes="; ".join(comparison.notes),
                )
                rows.append(row)
                if split == POOLED:
                    pooled_rows.append(row)
                    if metric == "test_top1":
                        pooled_top1[variant] = comparison
        for row, adjusted in zip(pooled_rows, holm_adjust([row.t_pvalue for row in pooled_rows])):
            row.holm_pvalue = adjusted
    return rows, pooled_top1


def _scaled(value: float | None) -> float | None:
    return None if value is None else value * 100.0
