"""Statistics for "is EleAtt better than the baseline, and by how much?".

Pure numpy/scipy (no torch), so the report can be rebuilt anywhere from the per-run results.

Conventions:

- Spread is the *sample* standard deviation (``ddof=1``) and is always reported with ``n``.
- A comparison is *paired*: run ``i`` of the variant and run ``i`` of the baseline share a seed
  (same initialisation seed, same data order) and a split. The paired differences
  ``variant - baseline`` are what is tested.
- The primary test is the paired t-test (``scipy.stats.ttest_rel``). The Wilcoxon signed-rank
  test is added where ``n`` allows a two-sided p-value below 0.05 at all (``n >= 6``); with
  fewer pairs its smallest attainable p-value is 2/2**n >= 0.0625, so it could never reject.
- The confidence interval is a seeded percentile bootstrap of the mean paired difference.

>>> comparison = paired_comparison([0.64, 0.66, 0.65], [0.61, 0.62, 0.62])
>>> round(comparison.mean_difference, 4), comparison.n
(0.0333, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats

# Smallest number of pairs for which a two-sided exact Wilcoxon test can give p < 0.05.
MIN_PAIRS_WILCOXON = 6
# Smallest number of pairs for which a paired t-test has a defined variance (df = n - 1 >= 1).
MIN_PAIRS_T_TEST = 2
# Differences closer than this count as equal (accuracies are fractions; float round-off only).
EQUAL_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation of one metric over runs.

    Attributes:
        mean: Arithmetic mean (NaN when ``n == 0``).
        std: Sample standard deviation, ``ddof=1`` (NaN when ``n < 2``).
        n: Number of values.
    """

    mean: float
    std: float
    n: int

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        """``"mean ± std (n = k)"``; values multiplied by ``scale`` (100 for percent)."""
        if self.n == 0:
            return "n/a"
        if self.n < 2:
            return f"{self.mean * scale:.{digits}f} (n = 1, no std)"
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f} (n = {self.n})"


def summarize(values: Sequence[float]) -> Summary:
    """Mean ± sample standard deviation (``ddof=1``) of ``values``, with their count.

    NaN values are rejected rather than silently dropped: a NaN metric means a broken run.

    Args:
        values: One metric value per run.

    Returns:
        The summary; ``std`` is NaN for fewer than two values.
    """
    array = _as_vector(values, "values")
    n = int(array.size)
    if n == 0:
        return Summary(mean=math.nan, std=math.nan, n=0)
    mean = float(np.mean(array))
    std = float(np.std(array, ddof=1)) if n >= 2 else math.nan
    return Summary(mean=mean, std=std, n=n)


def bootstrap_mean_ci(
    values: Sequence[float],
    confidence: float = 0.95,
    num_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    Resamples ``values`` with replacement ``num_resamples`` times (a fixed seed, so reports are
    reproducible) and takes the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
    of the resampled means. With very few values the interval is coarse (with 2 values the
    resampled mean takes only 3 distinct values); the report states ``n`` next to it.

    Args:
        values: The paired differences (or any sample), at least 2 of them.
        confidence: Coverage of the interval, in (0, 1).
        num_resamples: Number of bootstrap resamples.
        seed: Seed of the resampling generator.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: Fewer than 2 values, or ``confidence`` outside (0, 1).
    """
    array = _as_vector(values, "values")
    if array.size < 2:
        raise ValueError(
            f"bootstrap_mean_ci needs at least 2 values, got {array.size}; "
            "a confidence interval from one run is not defined (run more seeds)"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")
    generator = np.random.default_rng(seed)
    picks = generator.integers(0, array.size, size=(num_resamples, array.size))
    resampled_means = array[picks].mean(axis=1)  # (num_resamples,)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled_means, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedComparison:
    """A variant against the baseline on one metric, over paired runs.

    Attributes:
        n: Number of pairs.
        mean_variant: Mean of the variant's values.
        mean_baseline: Mean of the baseline's values.
        mean_difference: Mean of ``variant - baseline``.
        std_difference: Sample std of the differences (NaN when ``n < 2``).
        t_statistic: Paired t statistic (None when not computed).
        t_pvalue: Two-sided p-value of the paired t-test (None when not computed).
        wilcoxon_statistic: Wilcoxon signed-rank statistic (None when not computed).
        wilcoxon_pvalue: Two-sided Wilcoxon p-value (None when not computed).
        ci_low: Lower end of the bootstrap CI of the mean difference (None when n < 2).
        ci_high: Upper end of that CI (None when n < 2).
        confidence: Coverage of the CI.
        alpha: Significance level used for the verdict.
        notes: Why a test was skipped or is undefined, in plain words.
    """

    n: int
    mean_variant: float
    mean_baseline: float
    mean_difference: float
    std_difference: float
    t_statistic: float | None
    t_pvalue: float | None
    wilcoxon_statistic: float | None
    wilcoxon_pvalue: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    alpha: float
    notes: tuple[str, ...] = ()

    @property
    def significant(self) -> bool:
        """True when the paired t-test rejects "no difference" at ``alpha``."""
        return self.t_pvalue is not None and self.t_pvalue < self.alpha

    def as_dict(self) -> dict:
        """Plain dict (for CSV/JSON); ``notes`` joined with ``"; "``."""
        row = asdict(self)
        row["notes"] = "; ".join(self.notes)
        row["significant"] = self.significant
        return row


def paired_comparison(
    variant: Sequence[float],
    baseline: Sequence[float],
    alpha: float = 0.05,
    confidence: float = 0.95,
    num_resamples: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Paired t-test, Wilcoxon signed-rank test (where n allows) and bootstrap CI.

    Args:
        variant: The variant's metric, one value per (split, seed), in the same order as
            ``baseline``.
        baseline: The baseline's metric for the same (split, seed) pairs.
        alpha: Significance level for the verdict.
        confidence: Coverage of the bootstrap CI of the mean difference.
        num_resamples: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        The comparison; tests that cannot be computed are None with the reason in ``notes``.

    Raises:
        ValueError: The two sequences differ in length, are empty, or hold NaN.
    """
    variant_values = _as_vector(variant, "variant")
    baseline_values = _as_vector(baseline, "baseline")
    if variant_values.shape != baseline_values.shape:
        raise ValueError(
            f"paired values must have the same length: variant has {variant_values.size}, "
            f"baseline has {baseline_values.size}; pair runs by (split, seed) before testing"
        )
    n = int(variant_values.size)
    if n == 0:
        raise ValueError("no paired runs to compare (both sequences are empty)")
    differences = variant_values - baseline_values  # (n,)
    notes: list[str] = []
    t_statistic = t_pvalue = None
    wilcoxon_statistic = wilcoxon_pvalue = None
    ci_low = ci_high = None
    std_difference = float(np.std(differences, ddof=1)) if n >= 2 else math.nan

    if n < MIN_PAIRS_T_TEST:
        notes.append(f"too few paired runs for a test (n = {n}): no p-value reported")
    elif np.ptp(differences) <= EQUAL_TOLERANCE:
        notes.append(
            f"all {n} paired differences are equal ({differences[0]:+.6g}): the paired "
            "t-test is undefined (zero variance), no p-value reported"
        )
    else:
        result = scipy_stats.ttest_rel(variant_values, baseline_values)
        t_statistic, t_pvalue = float(result.statistic), float(result.pvalue)

    all_zero = bool(np.all(np.abs(differences) <= EQUAL_TOLERANCE))
    if n >= MIN_PAIRS_WILCOXON and not all_zero:
        result = scipy_stats.wilcoxon(variant_values, baseline_values)
        wilcoxon_statistic, wilcoxon_pvalue = float(result.statistic), float(result.pvalue)
    elif n >= MIN_PAIRS_T_TEST:
        notes.append(
            f"Wilcoxon signed-rank test not reported: n = {n} < {MIN_PAIRS_WILCOXON}, so it "
            "cannot reach p < 0.05"
            if n < MIN_PAIRS_WILCOXON
            else "Wilcoxon signed-rank test not reported: all differences are zero"
        )

    if n >= 2:
        ci_low, ci_high = bootstrap_mean_ci(differences, confidence, num_resamples, seed)

    return PairedComparison(
        n=n,
        mean_variant=float(np.mean(variant_values)),
        mean_baseline=float(np.mean(baseline_values)),
        mean_difference=float(np.mean(differences)),
        std_difference=std_difference,
        t_statistic=t_statistic,
        t_pvalue=t_pvalue,
        wilcoxon_statistic=wilcoxon_statistic,
        wilcoxon_pvalue=wilcoxon_pvalue,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        alpha=alpha,
        notes=tuple(notes),
    )


def holm_adjust(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (step-down), for several variants vs one baseline.

    None entries (tests not computed) are kept as None and do not count as hypotheses.

    Args:
        pvalues: Raw p-values, one per comparison.

    Returns:
        Adjusted p-values in the input order, each clipped to at most 1.
    """
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    adjusted: list[float | None] = [None] * len(pvalues)
    num_tests = len(present)
    running_max = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running_max = max(running_max, min(1.0, (num_tests - rank) * p))
        adjusted[i] = running_max
    return adjusted


def format_pvalue(pvalue: float) -> str:
    """``"p = 0.012"``, or ``"p < 0.001"`` for small values."""
    return "p < 0.001" if pvalue < 0.001 else f"p = {pvalue:.3f}"


def verdict(
    comparison: PairedComparison,
    variant_name: str,
    baseline_name: str,
    metric_name: str = "top-1 accuracy",
    scale: float = 100.0,
    unit: str = "points",
) -> str:
    """One plain-language sentence stating what the comparison shows.

    Args:
        comparison: Result of :func:`paired_comparison`.
        variant_name: E.g. ``"EleAtt-GRU"``.
        baseline_name: E.g. ``"baseline GRU"``.
        metric_name: The metric compared.
        scale: Multiplier applied to differences (100 turns fractions into percentage points).
        unit: Unit of the scaled difference.

    Returns:
        E.g. ``"EleAtt-GRU is better than baseline GRU on top-1 accuracy by 2.10 points
        (95% CI [0.80, 3.40], paired t-test p = 0.012, n = 5)."``
    """
    difference = comparison.mean_difference * scale
    level = f"{comparison.confidence * 100:g}%"
    ci = (
        f"{level} CI [{comparison.ci_low * scale:+.2f}, {comparison.ci_high * scale:+.2f}]"
        if comparison.ci_low is not None and comparison.ci_high is not None
        else "no CI"
    )
    if comparison.t_pvalue is None:
        reason = comparison.notes[0] if comparison.notes else "no test computed"
        return (
            f"{variant_name} vs {baseline_name} on {metric_name}: mean difference "
            f"{difference:+.2f} {unit} ({ci}, n = {comparison.n}); {reason}."
        )
    test = f"paired t-test {format_pvalue(comparison.t_pvalue)}, n = {comparison.n}"
    if comparison.significant:
        direction = "better" if difference > 0 else "worse"
        return (
            f"{variant_name} is {direction} than {baseline_name} on {metric_name} by "
            f"{abs(difference):.2f} {unit} ({ci}, {test})."
        )
    return (
        f"No significant difference at alpha = {comparison.alpha:g} between {variant_name} and "
        f"{baseline_name} on {metric_name}: mean difference {difference:+.2f} {unit} "
        f"({ci}, {test})."
    )


def _as_vector(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {array.shape}")
    if np.isnan(array).any():
        raise ValueError(
            f"{name} contains NaN at positions {np.flatnonzero(np.isnan(array)).tolist()}; "
            "a NaN metric means a failed run: rerun it or leave it out explicitly"
        )
    return array
