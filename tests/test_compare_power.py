"""Power figures against an independent formula (the noncentral t distribution) and the
figures quoted in issue 22."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from video_eleatt.compare.power import pairs_for, power_analysis


def noncentral_t_power(difference: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Two-sided paired t-test power from its definition: P(|T| > t_crit), T ~ nct."""
    df = n - 1
    critical = scipy_stats.t.ppf(1 - alpha / 2, df)
    noncentrality = difference / sd * math.sqrt(n)
    return float(
        scipy_stats.nct.sf(critical, df, noncentrality)
        + scipy_stats.nct.cdf(-critical, df, noncentrality)
    )


@pytest.mark.parametrize(
    "n, sd, target", [(3, 4.0, 2.0), (3, 4.0, 10.0), (5, 2.5, 2.0), (12, 1.0, 0.7)]
)
def test_power_at_target_matches_noncentral_t(n, sd, target):
    analysis = power_analysis(n, sd, target)
    assert analysis.power_at_target == pytest.approx(noncentral_t_power(target, sd, n), abs=1e-6)


def test_issue_figures():
    # 3 seeds, paired SD 4.0 points: 8% power for 2 points, 62% for 10 points
    assert power_analysis(3, 4.0, 2.0).power_at_target == pytest.approx(0.084, abs=0.001)
    assert power_analysis(3, 4.0, 10.0).power_at_target == pytest.approx(0.619, abs=0.001)


def test_detectable_difference_has_the_stated_power():
    for n, sd in [(2, 3.0), (3, 4.0), (5, 1.5), (20, 2.0)]:
        analysis = power_analysis(n, sd, 2.0)
        detectable = analysis.detectable_difference
        assert noncentral_t_power(detectable, sd, n) == pytest.approx(0.8, abs=1e-4)
        assert analysis.underpowered == (detectable > 2.0)


def test_pairs_needed_is_the_smallest_n_with_the_power():
    for sd in (0.5, 1.0, 4.0, 9.0):
        n = power_analysis(3, sd, 2.0).pairs_needed
        assert noncentral_t_power(2.0, sd, n) >= 0.8
        if n > 2:
            assert noncentral_t_power(2.0, sd, n - 1) < 0.8


def test_undefined_cases():
    assert power_analysis(1, math.nan, 2.0).detectable_difference is None
    assert power_analysis(4, 0.0, 2.0).pairs_needed is None
    assert not power_analysis(4, 0.0, 2.0).underpowered
    assert pairs_for(1e-5) is None  # beyond any practical number of seeds
    with pytest.raises(ValueError, match="target_difference must be > 0"):
        power_analysis(3, 1.0, 0.0)


def test_power_by_simulation():
    # The power figure is what a simulation of the design rejects (n = 4, SD 2, true 3).
    generator = np.random.default_rng(0)
    differences = generator.normal(3.0, 2.0, size=(4000, 4))
    rejected = scipy_stats.ttest_1samp(differences, 0.0, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(power_analysis(4, 2.0, 3.0).power_at_target, abs=0.02)
