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

from video_eleatt.compare.pervideo import (
    INFERENCE_NEW_DATA,
    PooledMcNemar,
    TwoLevelInterval,
    pooled_mcnemar,
    two_level_interval,
)
from video_eleatt.compare.results import RunResult
from video_eleatt.compare.stats import (
    PairedComparison,
    Summary,
    format_pvalue,
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
        alpha: Significance level; every interval is at level ``1 - alpha``.
        target_difference_pts: The difference of interest for the power analysis, in points.
        num_resamples: Bootstrap resamples (BCa, from ``MIN_PAIRS_BOOTSTRAP`` pairs).
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
    target_difference_pts: float = 2.0
    num_resamples: int = 10_000

    @property
    def confidence(self) -> float:
        """Level of every interval: ``1 - alpha`` (an interval agrees with its test)."""
        return 1.0 - self.alpha

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
    ``ci_low_pts`` / ``ci_high_pts`` are the paired t-interval (level ``1 - alpha``, on this
    test set) and ``significant`` says whether it excludes 0. The per-video columns
    (``two_level_*``, ``mcnemar_*``) are set for top-1 on one split where every run stored its
    test predictions; they make the inference on new data from the same distribution.
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
    bootstrap_low_pts: float | None
    bootstrap_high_pts: float | None
    target_difference_pts: float
    detectable_difference_pts: float | None
    power_at_target: float | None
    pairs_needed: int | None
    underpowered: bool
    num_test_videos: int | None
    two_level_low_pts: float | None
    two_level_high_pts: float | None
    two_level_significant: bool | None
    mcnemar_variant_only: int | None
    mcnemar_baseline_only: int | None
    mcnemar_pvalue: float | None
    verdict: str
    new_data_verdict: str
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
                pairs, runs = [], []
                for candidate_split in plan.splits if split == POOLED else [split]:
                    for seed in plan.seeds:
                        run = by_key.get((variant, candidate_split, seed))
                        base = by_key.get((plan.reference(variant), candidate_split, seed))
                        if run is None or base is None:
                            continue
                        values = (_metric(run, metric), _metric(base, metric))
                        if None not in values:
                            pairs.append(values)
                            runs.append((run, base))
                if not pairs:
                    continue
                comparison = paired_comparison(
                    [v for v, _ in pairs],
                    [b for _, b in pairs],
                    alpha=plan.alpha,
                    target_difference=plan.target_difference_pts / 100.0,
                    num_resamples=plan.num_resamples,
                )
                per_video = None
                if metric == "test_top1" and (split != POOLED or len(plan.splits) == 1):
                    per_video = per_video_analysis(runs, plan.confidence)
                sentence = verdict(
                    comparison,
                    plan.label(variant),
                    plan.label(plan.reference(variant)),
                    metric_name,
                )
                new_data = (
                    new_data_verdict(
                        *per_video, plan.label(variant), plan.label(plan.reference(variant))
                    )
                    if isinstance(per_video, tuple)
                    else per_video or ""
                )
                if split != POOLED:
                    sentence = f"[split {split}] {sentence}"
                    new_data = f"[split {split}] {new_data}" if new_data else ""
                interval, mcnemar_test = per_video if isinstance(per_video, tuple) else (None, None)
                power = comparison.power
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
                    bootstrap_low_pts=_scaled(comparison.bootstrap_low),
                    bootstrap_high_pts=_scaled(comparison.bootstrap_high),
                    target_difference_pts=plan.target_difference_pts,
                    detectable_difference_pts=_scaled(power and power.detectable_difference),
                    power_at_target=power and power.power_at_target,
                    pairs_needed=power and power.pairs_needed,
                    underpowered=bool(power and power.underpowered),
                    num_test_videos=interval.num_videos if interval else None,
                    two_level_low_pts=_scaled(interval and interval.low),
                    two_level_high_pts=_scaled(interval and interval.high),
                    two_level_significant=interval.significant if interval else None,
                    mcnemar_variant_only=sum(mcnemar_test.variant_only) if mcnemar_test else None,
                    mcnemar_baseline_only=(
                        sum(mcnemar_test.baseline_only) if mcnemar_test else None
                    ),
                    mcnemar_pvalue=mcnemar_test.pvalue if mcnemar_test else None,
                    verdict=sentence,
                    new_data_verdict=new_data,
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


def per_video_analysis(
    runs: Sequence[tuple[RunResult, RunResult]], confidence: float
) -> tuple[TwoLevelInterval, PooledMcNemar] | str:
    """The two-level interval and the pooled McNemar test of paired runs on one split.

    Args:
        runs: ``(variant run, reference run)`` per seed, all on the same split.
        confidence: Level of the interval.

    Returns:
        Both analyses, or the reason (a sentence) why they cannot be made.
    """
    correct = [(run.correct_by_video(), base.correct_by_video()) for run, base in runs]
    if not correct or any(not v or not b for v, b in correct):
        return (
            f"{INFERENCE_NEW_DATA.capitalize()}: not computed, as some runs did not store "
            "their per-video test predictions (runs recorded before they were; delete their "
            "result.json to retest them)"
        )
    videos = sorted(correct[0][0])
    if any(sorted(v) != videos or sorted(b) != videos for v, b in correct):
        return (
            f"{INFERENCE_NEW_DATA.capitalize()}: not computed, as the runs were tested on "
            "different videos"
        )
    variant = np.array([[v[video] for video in videos] for v, _ in correct], dtype=np.int64)
    baseline = np.array([[b[video] for video in videos] for _, b in correct], dtype=np.int64)
    return two_level_interval(variant, baseline, confidence), pooled_mcnemar(variant, baseline)


def new_data_verdict(
    interval: TwoLevelInterval,
    mcnemar_test: PooledMcNemar,
    variant_name: str,
    baseline_name: str,
    scale: float = 100.0,
) -> str:
    """The sentences of the per-video inference (top-1), in points."""
    level = f"{interval.confidence * 100:g}%"
    if interval.low is None or interval.high is None:
        ends = "no interval (it needs at least 2 seeds and some spread)"
    else:
        ends = f"{level} interval [{interval.low * scale:+.2f}, {interval.high * scale:+.2f}], " + (
            "excludes 0" if interval.significant else "includes 0"
        )
    seeds = ", ".join(format_pvalue(p) for p in mcnemar_test.seed_pvalues)
    return (
        f"{INFERENCE_NEW_DATA.capitalize()} (new seeds and new test videos): {variant_name} − "
        f"{baseline_name} = {interval.mean * scale:+.2f} points ({ends}; two-level interval "
        f"over {interval.num_seeds} seeds x {interval.num_videos} test videos). Per video, "
        f"pooled over seeds (new test videos, these trained models): {variant_name} alone "
        f"right on {sum(mcnemar_test.variant_only)}, {baseline_name} alone right on "
        f"{sum(mcnemar_test.baseline_only)}, exact McNemar {format_pvalue(mcnemar_test.pvalue)} "
        f"(per seed: {seeds})."
    )
