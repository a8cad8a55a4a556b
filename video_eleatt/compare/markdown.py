"""``report.md`` of a comparison, one function per section.

Every section takes the same :class:`ReportContent` and returns its lines (ending with a blank
line); :func:`render_markdown` joins them in order. A section with nothing to say returns no
lines (Problems, Figures) or says so (Verdict, Variants vs the baseline).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_eleatt.compare.results import RunResult
from video_eleatt.compare.rows import (
    ALL_SPLITS,
    POOLED,
    SHORT_NAMES,
    TIMINGS,
    ComparisonRow,
    ReportPlan,
    RunKey,
    SummaryRow,
    run_name,
)
from video_eleatt.compare.stats import MIN_PAIRS_BOOTSTRAP, Summary


@dataclass
class ReportContent:
    """Everything the report shows.

    Attributes:
        results: Finished runs, in report order.
        plan: What was meant to be compared.
        summary_rows: Per variant, per split and over splits.
        comparison_rows: Variant vs reference, per metric, pooled and per split.
        problems: Problems found (listed first in the Problems section).
        summary_notes: Notes of the summary (seeds left out of an average over splits).
        missing: Planned runs without a result.
        figures: ``(caption, path)`` of every figure written.
    """

    results: Sequence[RunResult]
    plan: ReportPlan
    summary_rows: list[SummaryRow]
    comparison_rows: list[ComparisonRow]
    problems: list[str]
    summary_notes: list[str]
    missing: list[RunKey]
    figures: list[tuple[str, Path]]

    def pooled(self, metric: str) -> list[ComparisonRow]:
        """The pooled comparison rows of one metric (``top1``, ``top5``, ``mca``)."""
        return [r for r in self.comparison_rows if r.split == POOLED and r.metric == metric]


def render_markdown(content: ReportContent) -> str:
    """The whole ``report.md``."""
    lines: list[str] = []
    for section in SECTIONS:
        lines += section(content)
    return "\n".join(lines)


def title(content: ReportContent) -> list[str]:
    plan, results = content.plan, content.results
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return [
        f"# Comparison: {plan.name}",
        "",
        f"Generated {now} by `video-eleatt compare`. Baseline: **{plan.label(plan.baseline)}**. "
        f"Variants: {', '.join(plan.label(v) for v in plan.variants)}. "
        f"Splits: {', '.join(split_title(s) for s in plan.splits)}. "
        f"Seeds: {', '.join(str(s) for s in plan.seeds)}. "
        f"Finished runs: {len(results)} of "
        f"{len(plan.variants) * len(plan.splits) * len(plan.seeds)}.",
        "",
    ]


def verdict(content: ReportContent) -> list[str]:
    lines = ["## Verdict (paired over seeds and splits)", ""]
    if not content.comparison_rows:
        return [*lines, "- No comparison could be made (see Problems).", ""]
    lines += [
        "Each line says which inference it makes: **on this test set** (the paired runs vary "
        "the seed; every run is scored on the same test videos) or **on new data from the "
        "same distribution** (new seeds and new test videos, from each run's per-video "
        "predictions).",
        "",
    ]
    for row in content.pooled("top1") + content.pooled("mca"):
        lines.append(f"- {row.verdict}")
        if row.new_data_verdict:
            lines.append(f"- {row.new_data_verdict}")
    return [*lines, ""]


def problems(content: ReportContent) -> list[str]:
    if not (content.problems or content.summary_notes):
        return []
    lines = ["## Problems", ""]
    lines += [f"- {problem}" for problem in content.problems + content.summary_notes]
    if content.missing:
        lines += ["", "Missing runs:", ""]
        for key in content.missing:
            reason = content.plan.failures.get(key)
            lines.append(f"- `{run_name(key)}`: {'failed: ' + reason if reason else 'not run'}")
    return [*lines, ""]


def results_per_variant(content: ReportContent) -> list[str]:
    plan = content.plan
    top5_note = (
        " Top-5 is n/a where there are fewer than 5 classes."
        if any(r.test_top5 is None for r in content.results)
        else ""
    )
    lines = [
        "## Results per variant",
        "",
        "Test accuracy in %, mean ± sample std (ddof = 1) over seeds, n stated. "
        "Top-1 is micro (correct videos / all videos); mean class accuracy is macro "
        "(mean over classes of per-class recall)." + top5_note,
        "",
    ]
    for split in ([ALL_SPLITS] if len(plan.splits) > 1 else []) + plan.splits:
        rows = [row for row in content.summary_rows if row.split == split]
        if rows:
            lines += summary_table(split, rows)
    return lines


def summary_table(split: str, rows: list[SummaryRow]) -> list[str]:
    """The table of one split (or of the average over splits)."""
    heading = (
        "Averaged over splits (each seed's mean over splits, then mean ± std over seeds)"
        if split == ALL_SPLITS
        else split_title(split).capitalize()
    )
    lines = [
        f"### {heading}",
        "",
        "| variant | top-1 (%) | top-5 (%) | mean class acc. (%) | parameters "
        "| train s/epoch | inference seq/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.label]
        cells += [percent_cell(row.accuracy_pct[short]) for short in SHORT_NAMES.values()]
        count = row.parameter_count
        cells.append(f"{count:,}" if isinstance(count, int) else str(count))
        cells += [
            row.timings[attribute].format(scale=1.0, digits=digits)
            for attribute, digits in TIMINGS.items()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def percent_cell(summary_pct: Summary) -> str:
    """A percentage of summary.csv shown with 2 decimals. It goes back to a fraction and is
    scaled again, as reports always computed it: the same inputs give the same bytes."""
    fraction = Summary(summary_pct.mean / 100.0, summary_pct.std / 100.0, summary_pct.n)
    return fraction.format(scale=100.0, digits=2)


def comparisons(content: ReportContent) -> list[str]:
    plan, rows = content.plan, content.comparison_rows
    lines = ["## Variants vs the baseline", ""]
    if not rows:
        return [*lines, "No paired comparison was computed (see Problems).", ""]
    level = f"{plan.confidence * 100:g}%"
    lines += [
        "Differences are variant − reference (the column `vs`; the baseline "
        f"{plan.label(plan.baseline)} unless the config names another) in percentage points "
        "over runs paired by (split, seed), on this test set. Test: paired t-test at "
        f"alpha = {plan.alpha:g}; interval: the same test's paired t-interval at {level} "
        "(`significant` = it excludes 0, which is p < alpha); Holm-adjusted p over the "
        "variants is given for the pooled rows when there is more than one variant. "
        "Wilcoxon signed-rank only where n >= 6 (below that it cannot reach p < 0.05); "
        f"BCa bootstrap interval only where n >= {MIN_PAIRS_BOOTSTRAP} (below that it covers "
        "less than its level).",
        "",
        f"| metric | variant | vs | split | n | mean diff (pts) | {level} t-interval (pts) "
        "| t-test p | Holm p | Wilcoxon p | BCa bootstrap (pts) | significant |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [comparison_line(row, plan) for row in rows]
    lines.append("")
    notes = sorted({row.notes for row in rows if row.notes})
    lines += [f"- Note: {note}" for note in notes]
    if notes:
        lines.append("")
    lines += power_section(rows, plan)
    lines += new_data_section(rows, plan)
    per_split = [
        sentence
        for row in rows
        if row.split != POOLED and row.metric == "top1"
        for sentence in (row.verdict, row.new_data_verdict)
        if sentence
    ]
    if per_split:
        lines += ["Per-split verdicts (top-1):", ""]
        lines += [f"- {sentence}" for sentence in per_split]
        lines.append("")
    return lines


def power_section(rows: list[ComparisonRow], plan: ReportPlan) -> list[str]:
    """What each pooled comparison can resolve (on this test set)."""
    pooled = [row for row in rows if row.split == POOLED and row.detectable_difference_pts]
    if not pooled:
        return []
    target = pooled[0].target_difference_pts
    lines = [
        "### Power (on this test set)",
        "",
        "Paired t-test at the same alpha, 80% power, given each comparison's observed paired "
        "SD (statsmodels `TTestPower`); the SD is itself uncertain at small n, so read these "
        f"as the design's sensitivity. The difference of interest is {target:g} points "
        "(`target_difference_pts`).",
        "",
        "| metric | variant | n | paired SD (pts) | detectable at 80% (pts) "
        f"| power for {target:g} pts | pairs needed for {target:g} pts | underpowered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in pooled:
        needed = "n/a" if row.pairs_needed is None else str(row.pairs_needed)
        power = "n/a" if row.power_at_target is None else f"{row.power_at_target * 100:.0f}%"
        lines.append(
            f"| {row.metric} | {plan.label(row.variant)} | {row.n} | {row.std_difference_pts:.2f} "
            f"| {row.detectable_difference_pts:.1f} | {power} | {needed} "
            f"| {'yes' if row.underpowered else 'no'} |"
        )
    return [*lines, ""]


def new_data_section(rows: list[ComparisonRow], plan: ReportPlan) -> list[str]:
    """The per-video inference (top-1, on new data from the same distribution)."""
    measured = [row for row in rows if row.metric == "top1" and row.num_test_videos]
    if not measured:
        return []
    lines = [
        "### On new data from the same distribution (top-1, per-video predictions)",
        "",
        "Two-level interval: seeds and test videos both resampled in thought; the crossed "
        "random-effects model of the per-video differences, generalized confidence interval "
        "(it is never narrower than the seed-level t-interval). Exact McNemar: videos one arm "
        "gets right and the other wrong, per seed and pooled over seeds; it treats the test "
        "videos as a sample and the trained models as fixed, and counts a video once per seed.",
        "",
        f"| variant | split | seeds x videos | mean diff (pts) | {plan.confidence * 100:g}% "
        "two-level interval (pts) | variant alone right | baseline alone right "
        "| McNemar p (pooled) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in measured:
        interval = (
            f"[{row.two_level_low_pts:+.2f}, {row.two_level_high_pts:+.2f}]"
            if row.two_level_low_pts is not None and row.two_level_high_pts is not None
            else "n/a"
        )
        lines.append(
            f"| {plan.label(row.variant)} | {row.split} | {row.n} x {row.num_test_videos} "
            f"| {row.mean_difference_pts:+.2f} | {interval} | {row.mcnemar_variant_only} "
            f"| {row.mcnemar_baseline_only} | {format_p(row.mcnemar_pvalue)} |"
        )
    return [*lines, ""]


def comparison_line(row: ComparisonRow, plan: ReportPlan) -> str:
    """One row of the comparison table."""
    return (
        f"| {row.metric} | {plan.label(row.variant)} | {plan.label(row.baseline)} "
        f"| {row.split} | {row.n} "
        f"| {row.mean_difference_pts:+.2f} | {interval_cell(row.ci_low_pts, row.ci_high_pts)} "
        f"| {format_p(row.t_pvalue)} | {format_p(row.holm_pvalue)} "
        f"| {format_p(row.wilcoxon_pvalue)} "
        f"| {interval_cell(row.bootstrap_low_pts, row.bootstrap_high_pts)} "
        f"| {'yes' if row.significant else 'no'} |"
    )


def interval_cell(low: float | None, high: float | None) -> str:
    """``[+1.00, +2.00]``, or ``n/a``."""
    return "n/a" if low is None or high is None else f"[{low:+.2f}, {high:+.2f}]"


def figures(content: ReportContent) -> list[str]:
    if not content.figures:
        return []
    lines = ["## Figures", ""]
    for caption, path in content.figures:
        lines += [f"### {caption}", "", f"![{caption}](figures/{path.name})", ""]
    return lines


def protocol_and_data(content: ReportContent) -> list[str]:
    results = content.results
    lines = ["## Test protocol and data", ""]
    caches = sorted({(r.cache_dir, r.cache_fingerprint) for r in results})
    lines += [
        f"- Feature cache: `{cache_dir}` (config fingerprint `{fingerprint}`)"
        for cache_dir, fingerprint in caches
    ]
    class_counts = sorted({len(r.class_names) for r in results})
    lines.append(f"- Classes: {', '.join(str(c) for c in class_counts)}")
    tested = sorted({(r.split, r.num_test_videos) for r in results})
    lines.append(
        "- Test videos per split: "
        + ", ".join(f"{split_title(split)}: {count}" for split, count in tested)
    )
    protocols = {json.dumps(r.test_protocol, sort_keys=True) for r in results}
    lines += [
        f"- Test protocol: {describe_protocol(json.loads(protocol))}"
        for protocol in sorted(protocols)
    ]
    if any((r.test_protocol or {}).get("checkpoint") == "last" for r in results):
        lines.append(
            "- The last epoch's checkpoint is tested where the validation videos are the test "
            "videos: picking the best epoch on them would select on the test set."
        )
    lines += [f"- {note}" for note in content.plan.notes]
    devices = sorted({r.device for r in results if r.device})
    if devices:
        lines.append(f"- Devices: {', '.join(devices)}")
    lines += [
        "- Inference sequences/s: test-set videos classified per second by the model alone in "
        "eval mode (batches as in testing, features already in memory, no data loading).",
        "",
    ]
    return lines


def configurations(content: ReportContent) -> list[str]:
    plan = content.plan
    lines = ["## Exact configurations", ""]
    for path, text in plan.base_configs.items():
        lines += [f"Base training config `{path}`:", "", "```yaml", text.rstrip(), "```", ""]
    for variant in plan.variants:
        lines += variant_configuration(variant, content)
    return lines


def variant_configuration(variant: str, content: ReportContent) -> list[str]:
    """A variant's overrides, its model as run, and where its run folders are."""
    plan = content.plan
    lines = [f"### {plan.label(variant)} (`{variant}`)", ""]
    if variant in plan.variant_configs:
        lines += ["Overrides of the base config:", ""]
        lines += json_block(plan.variant_configs[variant])
    runs = [r for r in content.results if r.variant == variant]
    model_configs = {json.dumps(r.model_config, sort_keys=True) for r in runs}
    for model_config in sorted(model_configs):
        lines += ["Model as run:", ""]
        lines += json_block(json.loads(model_config))
    if runs:
        folder = Path(runs[0].run_dir).parent
        lines += [f"Run folders (each holds its `config.yaml`): `{folder}`", ""]
    return lines


def json_block(value: Any) -> list[str]:
    return ["```json", json.dumps(value, indent=2, sort_keys=True), "```", ""]


def method(content: ReportContent) -> list[str]:
    return [
        "## Method",
        "",
        "Each variant is trained once per (split, seed) with the same training code as "
        "`video-eleatt fit`, on the same feature cache; a seed fixes initialisation and data "
        "order, so run i of a variant and run i of the baseline see the same batches. "
        "Spread is the sample standard deviation (ddof = 1). Paired tests use the "
        "differences of matching runs; pooling splits treats each (split, seed) pair as one "
        "observation. A non-significant result means the runs cannot tell the variants apart "
        "at this n, not that they are equal; the interval says how large a difference "
        "remains plausible, and the power table what this design could have detected. "
        "The paired t-test and its interval are inferences on this test set: the seeds vary, "
        "the test videos do not. The two-level interval and the McNemar tests use each run's "
        "per-video predictions (`runs/<variant>/split-<split>/seed-<seed>/"
        "test_predictions.csv`) to add the test set's own sampling error.",
        "",
    ]


def files(content: ReportContent) -> list[str]:
    return [
        "## Files",
        "",
        "- `results.csv`: one row per planned run (status finished / failed / missing).",
        "- `summary.csv`: per variant, per split and averaged over splits (accuracy in %).",
        "- `comparisons.csv`: every variant vs the baseline, per metric, pooled and per split "
        "(t-interval, power, and for top-1 the two-level interval and McNemar counts).",
        "- `per_class.csv`: mean per-class accuracy per variant (%).",
        "- `figures/`: the PNG figures above.",
        "",
    ]


SECTIONS: tuple[Callable[[ReportContent], list[str]], ...] = (
    title,
    verdict,
    problems,
    results_per_variant,
    comparisons,
    figures,
    protocol_and_data,
    configurations,
    method,
    files,
)


def describe_protocol(protocol: dict[str, Any]) -> str:
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
        parts.append(f"training sampling: {describe_train_sampling(protocol)}")
    return "; ".join(parts)


def describe_train_sampling(protocol: dict[str, Any]) -> str:
    """How training draws steps from a video, as the data module does it: ``full`` uses every
    cached step (``num_steps`` does not apply), ``segments`` one step in each of
    ``num_steps`` segments, ``window`` ``num_steps`` consecutive steps.

    >>> describe_train_sampling({"train_sampling": "full", "num_steps": 32})
    'full (every cached step of each video)'
    """
    mode = protocol.get("train_sampling")
    steps = protocol.get("num_steps")
    if mode == "full":
        return "full (every cached step of each video)"
    if mode == "segments" and steps:
        return f"segments ({steps} segments, one random step in each)"
    if mode == "window" and steps:
        return f"window ({steps} consecutive steps from a random start)"
    return str(mode)


def split_title(split: str) -> str:
    """``split 1``, or ``the base config's split`` for the default split."""
    return "the base config's split" if split == "default" else f"split {split}"


def format_p(value: float | None) -> str:
    """A p-value for a table: ``n/a``, ``< 0.001`` or three decimals."""
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
