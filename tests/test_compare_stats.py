"""Statistics of the comparison report, against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from video_eleatt.compare.stats import (
    MIN_PAIRS_BOOTSTRAP,
    bca_mean_ci,
    format_pvalue,
    holm_adjust,
    paired_comparison,
    paired_t_interval,
    summarize,
    verdict,
)


def test_summarize_uses_sample_std():
    summary = summarize([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; ddof=1 -> 5 / 3
    assert summary.n == 4
    assert summary.mean == pytest.approx(2.5)
    assert summary.std == pytest.approx(math.sqrt(5.0 / 3.0))
    assert summary.format(scale=1.0) == "2.50 ± 1.29 (n = 4)"


def test_summarize_single_and_empty():
    one = summarize([0.5])
    assert (one.mean, one.n) == (0.5, 1) and math.isnan(one.std)
    assert "no std" in one.format(scale=100.0)
    assert summarize([]).n == 0


def test_summarize_rejects_nan():
    with pytest.raises(ValueError, match="NaN at positions \\[1\\]"):
        summarize([0.1, float("nan")])


def test_paired_t_test_hand_computed():
    variant = [3.0, 5.0, 4.0, 6.0]
    baseline = [1.0, 2.0, 2.0, 3.0]
    # differences 2, 3, 2, 3: mean 2.5, sample std sqrt(1/3), t = 2.5 / (sqrt(1/3) / 2)
    comparison = paired_comparison(variant, baseline)
    expected_t = 2.5 / (math.sqrt(1.0 / 3.0) / 2.0)
    assert comparison.n == 4
    assert comparison.mean_difference == pytest.approx(2.5)
    assert comparison.std_difference == pytest.approx(math.sqrt(1.0 / 3.0))
    assert comparison.t_statistic == pytest.approx(expected_t)
    assert comparison.t_pvalue == pytest.approx(2 * scipy_stats.t.sf(expected_t, df=3))
    assert comparison.significant
    # n = 4 < 6: Wilcoxon cannot reach p < 0.05, so it is not reported, and the report says why
    assert comparison.wilcoxon_pvalue is None
    assert any("Wilcoxon" in note for note in comparison.notes)


def test_paired_test_matches_scipy_on_fixed_numbers():
    variant = [0.641, 0.652, 0.633, 0.660, 0.648, 0.639, 0.655]
    baseline = [0.620, 0.641, 0.635, 0.642, 0.630, 0.633, 0.640]
    comparison = paired_comparison(variant, baseline)
    t_result = scipy_stats.ttest_rel(variant, baseline)
    w_result = scipy_stats.wilcoxon(variant, baseline)
    assert comparison.t_statistic == pytest.approx(float(t_result.statistic))
    assert comparison.t_pvalue == pytest.approx(float(t_result.pvalue))
    assert comparison.wilcoxon_statistic == pytest.approx(float(w_result.statistic))
    assert comparison.wilcoxon_pvalue == pytest.approx(float(w_result.pvalue))


def test_wilcoxon_exact_hand_computed():
    # 6 positive differences with distinct magnitudes: W- = 0, exact two-sided p = 2 / 2**6
    variant = [1.1, 2.2, 3.3, 4.4, 5.5, 6.6]
    baseline = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    comparison = paired_comparison(variant, baseline)
    assert comparison.wilcoxon_statistic == 0.0
    assert comparison.wilcoxon_pvalue == pytest.approx(2.0 / 64.0)


def test_t_interval_matches_scipy_and_hand_computed():
    variant = [3.0, 5.0, 4.0, 6.0]
    baseline = [1.0, 2.0, 2.0, 3.0]
    # differences 2, 3, 2, 3: mean 2.5, standard error sqrt(1/3) / 2, t quantile with df 3
    half = scipy_stats.t.ppf(0.975, 3) * math.sqrt(1.0 / 3.0) / 2.0
    assert paired_t_interval(variant, baseline) == pytest.approx((2.5 - half, 2.5 + half))
    reference = scipy_stats.ttest_rel(variant, baseline).confidence_interval(0.95)
    comparison = paired_comparison(variant, baseline)
    assert (comparison.ci_low, comparison.ci_high) == pytest.approx((reference.low, reference.high))
    # the issue's figures: differences with mean +5.38 points, the t-interval is [-4.5, +15.3]
    issue = paired_comparison([0.5556 + 0.0154, 0.5556 - 0.046, 0.5556 + 0.0306], [0.5, 0.5, 0.5])
    assert not issue.significant and issue.ci_low < 0 < issue.ci_high


def test_interval_and_test_never_disagree():
    generator = np.random.default_rng(5)
    for _ in range(40):
        n = int(generator.integers(2, 9))
        variant = generator.normal(0.6, 0.05, n)
        baseline = variant - generator.normal(generator.normal(0, 0.03), 0.03, n)
        for alpha in (0.05, 0.1, 0.01):
            comparison = paired_comparison(variant, baseline, alpha=alpha)
            assert comparison.significant == (comparison.t_pvalue < alpha)
            assert comparison.confidence == pytest.approx(1 - alpha)


def test_t_interval_covers_at_n3_by_simulation():
    # 1000 simulated experiments with a known true difference (3 points, seed SD 4 points):
    # the 95% interval must cover it 93-97% of the time (the percentile bootstrap this
    # replaces covered about 76% at n = 3).
    generator = np.random.default_rng(0)
    true_difference = 0.03
    covered = 0
    for _ in range(1000):
        baseline = generator.normal(0.5, 0.05, 3)
        variant = baseline + generator.normal(true_difference, 0.04, 3)
        low, high = paired_t_interval(variant, baseline)  # the comparison's (tested above)
        covered += low <= true_difference <= high
    assert 930 <= covered <= 970


def test_percentile_bootstrap_would_fail_the_coverage_test():
    # The check above can fail: the old interval (percentile bootstrap of 3 differences)
    # covers far less than 95% in the same simulation.
    generator = np.random.default_rng(0)
    covered = 0
    for _ in range(300):
        differences = generator.normal(0.03, 0.04, 3)
        picks = generator.integers(0, 3, size=(2000, 3))
        low, high = np.quantile(differences[picks].mean(axis=1), [0.025, 0.975])
        covered += low <= 0.03 <= high
    assert covered / 300 < 0.85


def test_bca_only_from_its_threshold():
    generator = np.random.default_rng(1)
    small = paired_comparison(generator.normal(0.6, 0.05, 10), generator.normal(0.6, 0.05, 10))
    assert small.bootstrap_low is None and small.bootstrap_high is None
    n = MIN_PAIRS_BOOTSTRAP
    variant, baseline = generator.normal(0.62, 0.05, n), generator.normal(0.6, 0.05, n)
    large = paired_comparison(variant, baseline, num_resamples=2000)
    reference = scipy_stats.bootstrap(
        (variant - baseline,), np.mean, n_resamples=2000, method="BCa",
        rng=np.random.default_rng(0),
    ).confidence_interval  # fmt: skip
    assert (large.bootstrap_low, large.bootstrap_high) == pytest.approx(
        (reference.low, reference.high)
    )
    assert bca_mean_ci(variant - baseline, num_resamples=2000) == pytest.approx(
        (reference.low, reference.high)
    )


def test_bca_rejects_one_value():
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        bca_mean_ci([0.2])


def test_one_pair_reports_no_pvalue():
    comparison = paired_comparison([0.7], [0.6])
    assert comparison.t_pvalue is None and comparison.ci_low is None
    assert not comparison.significant and comparison.power is None
    sentence = verdict(comparison, "EleAtt-GRU", "baseline GRU")
    assert "too few paired runs for a test (n = 1): no p-value reported" in sentence
    assert "+10.00 points" in sentence


def test_equal_differences_give_no_pvalue():
    comparison = paired_comparison([0.7, 0.8, 0.9], [0.6, 0.7, 0.8])
    assert comparison.t_pvalue is None
    assert "zero variance" in comparison.notes[0]


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="variant has 3, baseline has 2"):
        paired_comparison([0.1, 0.2, 0.3], [0.1, 0.2])


def test_verdict_sentences():
    better = paired_comparison([0.65, 0.66, 0.64, 0.67], [0.61, 0.63, 0.62, 0.62])
    sentence = verdict(better, "EleAtt-GRU", "baseline GRU")
    assert sentence.startswith(
        "On this test set, EleAtt-GRU is better than baseline GRU on top-1 accuracy by 3.50"
    )
    assert "95% paired t-interval [" in sentence and "paired t-test p = " in sentence
    assert "n = 4" in sentence
    worse = paired_comparison([0.61, 0.63, 0.62, 0.62], [0.65, 0.66, 0.64, 0.67])
    assert " is worse than " in verdict(worse, "EleAtt-GRU", "baseline GRU")
    unclear = paired_comparison([0.65, 0.60, 0.64, 0.61], [0.62, 0.63, 0.62, 0.62])
    assert verdict(unclear, "EleAtt-GRU", "baseline GRU").startswith(
        "On this test set, no significant difference at alpha = 0.05 between EleAtt-GRU and "
        "baseline GRU"
    )


def test_underpowered_verdict_says_what_it_cannot_resolve():
    # paired SD 4 points at n = 3: 8% power for 2 points, about 34 seeds needed
    comparison = paired_comparison([0.54, 0.58, 0.50], [0.50, 0.50, 0.50])
    assert comparison.std_difference == pytest.approx(0.04)
    sentence = verdict(comparison, "EleAtt-GRU", "baseline GRU")
    assert "Underpowered: with n = 3 it cannot resolve differences below 13.1 points" in sentence
    assert "its power for 2 points is 8%" in sentence
    assert "about 34 paired runs (seeds) would resolve 2 points" in sentence
    precise = paired_comparison(
        [0.60, 0.61, 0.62, 0.63, 0.64, 0.65], [0.50, 0.51, 0.515, 0.53, 0.54, 0.55]
    )
    assert verdict(precise, "EleAtt-GRU", "baseline GRU").endswith(
        "its power for 2 points is 100%."
    )


def test_holm_hand_computed():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert holm_adjust([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])


def test_format_pvalue():
    assert format_pvalue(0.0004) == "p < 0.001"
    assert format_pvalue(0.0123) == "p = 0.012"
