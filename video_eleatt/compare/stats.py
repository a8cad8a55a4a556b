"""Statistics for "is EleAtt better than the baseline, and by how much?".

Pure numpy/scipy/statsmodels (no torch), so the report can be rebuilt anywhere from the
per-run results.

Conventions:

- Spread is the *sample* standard deviation (``ddof=1``) and is always reported with ``n``.
- A comparison is *paired*: run ``i`` of the variant and run ``i`` of the baseline share a seed
  (same initialisation seed, same data order) and a split. The paired differences
  ``variant - baseline`` are what is tested.
- The test is the paired t-test (``scipy.stats.ttest_rel``) and the interval is the paired
  t-interval of the same model at level ``1 - alpha``
  (``ttest_rel(...).confidence_interval()``). ``significant`` is "the interval excludes 0",
  which is "p < alpha" up to float rounding: the verdict and its interval cannot disagree.
- Both make an inference *on this test set*: they generalise over new seeds, not over new
  test videos (for that, see :mod:`~video_eleatt.compare.pervideo`).
- A BCa bootstrap interval (``scipy.stats.bootstrap``) is added, labelled, only from
  :data:`MIN_PAIRS_BOOTSTRAP` pairs on: below that it covers less than its nominal level.
- The Wilcoxon signed-rank test is added where ``n`` allows a two-sided p-value below 0.05 at
  all (``n >= 6``); with fewer pairs its smallest attainable p-value is 2/2**n >= 0.0625.
- Power (:mod:`~video_eleatt.compare.power`): what this design can resolve, given the
  observed paired SD.

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

from video_eleatt.compare.power import DEFAULT_POWER, PowerAnalysis, power_analysis

# Smallest number of pairs for which a two-sided exact Wilcoxon test can give p < 0.05.
MIN_PAIRS_WILCOXON = 6
# Smallest number of pairs for which a paired t-test has a defined variance (df = n - 1 >= 1).
MIN_PAIRS_T_TEST = 2
# Differences closer than this count as equal (accuracies are fractions; float round-off only).
EQUAL_TOLERANCE = 1e-12
# Smallest number of pairs for which the BCa bootstrap interval of a mean is shown. Measured by
# simulation (2000 experiments each, 2000 resamples, nominal 95 %, true mean known), BCa vs the
# t-interval: n = 10: 90.2 % (normal) and 86.5 % (lognormal); n = 20: 93.7 % and 89.8 %;
# n = 30: 93.1 % and 90.8 % against the t-interval's 94.7 % and 91.9 %. From 30 pairs on it is
# within 1.6 points of the t-interval (exact only for normal differences) and serves as a check
# of that assumption; below, it claims more precision than it has. The verdict never uses it.
MIN_PAIRS_BOOTSTRAP = 30


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


def paired_t_interval(
    variant: Sequence[float], baseline: Sequence[float], confidence: float = 0.95
) -> tuple[float, float]:
    """The paired t-interval of the mean difference ``variant - baseline``.

    The interval of the paired t-test itself (``scipy.stats.ttest_rel(...)
    .confidence_interval``): at ``confidence = 1 - alpha`` it excludes 0 exactly when the test
    rejects at ``alpha``.

    Raises:
        ValueError: fewer than 2 pairs, lengths differ, or ``confidence`` outside (0, 1).
    """
    variant_values = _as_vector(variant, "variant")
    baseline_values = _as_vector(baseline, "baseline")
    if variant_values.size < 2 or variant_values.shape != baseline_values.shape:
        raise ValueError(
            f"a paired t-interval needs at least 2 pairs of equal length, got "
            f"{variant_values.size} and {baseline_values.size} values"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    interval = scipy_stats.ttest_rel(variant_values, baseline_values).confidence_interval(
        confidence
    )
    return float(interval.low), float(interval.high)


def bca_mean_ci(
    values: Sequence[float],
    confidence: float = 0.95,
    num_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """BCa bootstrap interval of the mean of ``values`` (``scipy.stats.bootstrap``, seeded).

    Meant for ``len(values) >= MIN_PAIRS_BOOTSTRAP`` (see there for why); smaller samples are
    accepted for tests and exploration.

    Raises:
        ValueError: fewer than 2 values, or ``confidence`` outside (0, 1).
    """
    array = _as_vector(values, "values")
    if array.size < 2:
        raise ValueError(
            f"bca_mean_ci needs at least 2 values, got {array.size}; "
            "a confidence interval from one run is not defined (run more seeds)"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    interval = scipy_stats.bootstrap(
        (array,),
        np.mean,
        confidence_level=confidence,
        n_resamples=num_resamples,
        method="BCa",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return float(interval.low), float(interval.high)


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
        ci_low: Lower end of the paired t-interval of the mean difference, at level
            ``1 - alpha`` (None when the t-test is not computed).
        ci_high: Upper end of that interval.
        bootstrap_low: Lower end of the BCa bootstrap interval at the same level (None below
            :data:`MIN_PAIRS_BOOTSTRAP` pairs).
        bootstrap_high: Upper end of that interval.
        alpha: Significance level of the test; the interval's level is ``1 - alpha``.
        power: What the design resolves (None when ``n < 2``).
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
    bootstrap_low: float | None
    bootstrap_high: float | None
    alpha: float
    power: PowerAnalysis | None = None
    notes: tuple[str, ...] = ()

    @property
    def confidence(self) -> float:
        """Level of the intervals: ``1 - alpha``, so that the interval and the test agree."""
        return 1.0 - self.alpha

    @property
    def significant(self) -> bool:
        """True when the paired t-interval excludes 0 (i.e. the t-test rejects at ``alpha``)."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 0.0 or self.ci_high < 0.0

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
    target_difference: float = 0.02,
    num_resamples: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Paired t-test with its t-interval, power, and (where n allows) Wilcoxon and BCa.

    Args:
        variant: The variant's metric, one value per (split, seed), in the same order as
            ``baseline``.
        baseline: The baseline's metric for the same (split, seed) pairs.
        alpha: Significance level of the test; the intervals are at ``1 - alpha``.
        target_difference: Difference of interest for the power analysis, in the units of
            the values (0.02 = 2 points of accuracy).
        num_resamples: Bootstrap resamples (BCa, from :data:`MIN_PAIRS_BOOTSTRAP` pairs).
        seed: Bootstrap seed.

    Returns:
        The comparison; tests that cannot be computed are None with the reason in ``notes``.

    Raises:
        ValueError: The two sequences differ in length, are empty, or hold NaN; ``alpha``
            outside (0, 1).
    """
    variant_values = _as_vector(variant, "variant")
    baseline_values = _as_vector(baseline, "baseline")
    if variant_values.shape != baseline_values.shape:
        raise ValueError(
            f"paired values must have the same length: variant has {variant_values.size}, "
            f"baseline has {baseline_values.size}; pair runs by (split, seed) before testing"
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = int(variant_values.size)
    if n == 0:
        raise ValueError("no paired runs to compare (both sequences are empty)")
    differences = variant_values - baseline_values  # (n,)
    notes: list[str] = []
    t_statistic = t_pvalue = None
    wilcoxon_statistic = wilcoxon_pvalue = None
    ci_low = ci_high = bootstrap_low = bootstrap_high = None
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
        interval = result.confidence_interval(1.0 - alpha)
        ci_low, ci_high = float(interval.low), float(interval.high)
        if n >= MIN_PAIRS_BOOTSTRAP:
            bootstrap_low, bootstrap_high = bca_mean_ci(
                differences, 1.0 - alpha, num_resamples, seed
            )

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
        bootstrap_low=bootstrap_low,
        bootstrap_high=bootstrap_high,
        alpha=alpha,
        power=(
            power_analysis(n, std_difference, target_difference, alpha, DEFAULT_POWER)
            if n >= MIN_PAIRS_T_TEST
            else None
        ),
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
    """Plain-language sentences stating what the comparison shows, and what it cannot.

    The inference is "on this test set": the paired runs vary the seed, not the test videos.

    Args:
        comparison: Result of :func:`paired_comparison`.
        variant_name: E.g. ``"EleAtt-GRU"``.
        baseline_name: E.g. ``"baseline GRU"``.
        metric_name: The metric compared.
        scale: Multiplier applied to differences (100 turns fractions into percentage points).
        unit: Unit of the scaled difference.

    Returns:
        E.g. ``"On this test set, EleAtt-GRU is better than baseline GRU on top-1 accuracy by
        2.10 points (95% paired t-interval [+0.80, +3.40], paired t-test p = 0.012, n = 5).
        Power: ..."``
    """
    difference = comparison.mean_difference * scale
    level = f"{comparison.confidence * 100:g}%"
    ci = (
        f"{level} paired t-interval [{comparison.ci_low * scale:+.2f}, "
        f"{comparison.ci_high * scale:+.2f}]"
        if comparison.ci_low is not None and comparison.ci_high is not None
        else "no interval"
    )
    power = power_sentence(comparison.power, scale, unit)
    if comparison.t_pvalue is None:
        reason = comparison.notes[0] if comparison.notes else "no test computed"
        return (
            f"On this test set, {variant_name} vs {baseline_name} on {metric_name}: mean "
            f"difference {difference:+.2f} {unit} ({ci}, n = {comparison.n}); {reason}."
            + (f" {power}" if power else "")
        )
    test = f"paired t-test {format_pvalue(comparison.t_pvalue)}, n = {comparison.n}"
    if comparison.significant:
        direction = "better" if difference > 0 else "worse"
        sentence = (
            f"On this test set, {variant_name} is {direction} than {baseline_name} on "
            f"{metric_name} by {abs(difference):.2f} {unit} ({ci}, {test})."
        )
    else:
        sentence = (
            f"On this test set, no significant difference at alpha = {comparison.alpha:g} "
            f"between {variant_name} and {baseline_name} on {metric_name}: mean difference "
            f"{difference:+.2f} {unit} ({ci}, {test})."
        )
    return f"{sentence} {power}" if power else sentence


def power_sentence(power: PowerAnalysis | None, scale: float = 100.0, unit: str = "points") -> str:
    """What the design can resolve: "Underpowered: ..." below the wanted power at the target
    difference, else "Power: ..."; empty when undefined (``n < 2`` or zero spread)."""
    if power is None or power.detectable_difference is None or power.power_at_target is None:
        return ""
    detectable = power.detectable_difference * scale
    target = power.target_difference * scale
    given = (
        f"({power.power * 100:g}% power at alpha = {power.alpha:g}, given the paired SD of "
        f"{power.std_difference * scale:.2f} {unit})"
    )
    needed = (
        f"about {power.pairs_needed} paired runs (seeds) would resolve {target:g} {unit}"
        if power.pairs_needed is not None
        else f"no practical number of seeds would resolve {target:g} {unit}"
    )
    if power.underpowered:
        return (
            f"Underpowered: with n = {power.n} it cannot resolve differences below "
            f"{detectable:.1f} {unit} {given}; its power for {target:g} {unit} is "
            f"{power.power_at_target * 100:.0f}%; {needed}."
        )
    return (
        f"Power: with n = {power.n} it resolves differences of {detectable:.1f} {unit} or more "
        f"{given}; its power for {target:g} {unit} is {power.power_at_target * 100:.0f}%."
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
