"""Statistics of the comparison report, against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from video_eleatt.compare.stats import (
    bootstrap_mean_ci,
    format_pvalue,
    holm_adjust,
    paired_comparison,
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


def test_bootstrap_two_values_hand_computed():
    # the resampled mean of [a, b] is a (1/4), (a+b)/2 (1/2) or b (1/4): the 95% interval is [a, b]
    low, high = bootstrap_mean_ci([1.0, 3.0], confidence=0.95, num_resamples=10_000, seed=0)
    assert (low, high) == (1.0, 3.0)
    # and a 40% interval lies inside the middle mass {2.0}
    assert bootstrap_mean_ci([1.0, 3.0], confidence=0.4, seed=0) == (2.0, 2.0)


def test_bootstrap_is_seeded_and_close_to_scipy():
    values = np.array([0.3, -0.1, 0.8, 0.5, 0.2, 0.9, -0.4, 0.6, 0.1, 0.7])
    ours = bootstrap_mean_ci(values, num_resamples=20_000, seed=3)
    assert ours == bootstrap_mean_ci(values, num_resamples=20_000, seed=3)
    reference = scipy_stats.bootstrap(
        (values,), np.mean, n_resamples=20_000, method="percentile", rng=np.random.default_rng(7)
    ).confidence_interval
    assert ours[0] == pytest.approx(reference.low, abs=0.03)
    assert ours[1] == pytest.approx(reference.high, abs=0.03)
    assert ours[0] < values.mean() < ours[1]


def test_bootstrap_rejects_one_value():
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        bootstrap_mean_ci([0.2])


def test_one_pair_reports_no_pvalue():
    comparison = paired_comparison([0.7], [0.6])
    assert comparison.t_pvalue is None and comparison.ci_low is None
    assert not comparison.significant
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
    assert sentence.startswith("EleAtt-GRU is better than baseline GRU on top-1 accuracy by 3.50")
    assert "95% CI [" in sentence and "paired t-test p = " in sentence and "n = 4" in sentence
    worse = paired_comparison([0.61, 0.63, 0.62, 0.62], [0.65, 0.66, 0.64, 0.67])
    assert " is worse than " in verdict(worse, "EleAtt-GRU", "baseline GRU")
    unclear = paired_comparison([0.65, 0.60, 0.64, 0.61], [0.62, 0.63, 0.62, 0.62])
    assert verdict(unclear, "EleAtt-GRU", "baseline GRU").startswith(
        "No significant difference at alpha = 0.05 between EleAtt-GRU and baseline GRU"
    )


def test_holm_hand_computed():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert holm_adjust([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])


def test_format_pvalue():
    assert format_pvalue(0.0004) == "p < 0.001"
    assert format_pvalue(0.0123) == "p = 0.012"
