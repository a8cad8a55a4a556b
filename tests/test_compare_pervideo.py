"""Per-video statistics: the two-level interval's coverage on simulated seed and test-set
noise, and the pooled exact McNemar test against hand-computed binomial values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.special import expit

from video_eleatt.compare.pervideo import pooled_mcnemar, two_level_interval

SEEDS, VIDEOS = 3, 192


def simulate(generator, seed_sd: float, gain: float):
    """Per-video 0/1 correctness of two arms: video difficulty and per-video gain (new test
    videos each experiment), seed effects per arm (new seeds each experiment)."""
    difficulty = generator.normal(0.0, 1.5, VIDEOS)
    video_gain = gain + generator.normal(0.0, 1.0, VIDEOS)
    variant_seed = generator.normal(0.0, seed_sd, (SEEDS, 1))
    baseline_seed = generator.normal(0.0, seed_sd, (SEEDS, 1))
    variant = generator.random((SEEDS, VIDEOS)) < expit(difficulty + video_gain + variant_seed)
    baseline = generator.random((SEEDS, VIDEOS)) < expit(difficulty + baseline_seed)
    return variant.astype(np.int64), baseline.astype(np.int64)


def population_difference(seed_sd: float, gain: float) -> float:
    """The difference on new data: the mean over many seeds and videos."""
    generator = np.random.default_rng(99)
    size = 400_000
    difficulty = generator.normal(0.0, 1.5, size)
    variant = expit(
        difficulty + gain + generator.normal(0, 1.0, size) + generator.normal(0, seed_sd, size)
    )
    baseline = expit(difficulty + generator.normal(0, seed_sd, size))
    return float(np.mean(variant - baseline))


@pytest.mark.parametrize("seed_sd", [0.3, 0.05])
def test_two_level_interval_covers_seed_and_test_set_noise(seed_sd):
    generator = np.random.default_rng(1)
    truth = population_difference(seed_sd, 0.2)
    covered = 0
    for _ in range(1000):
        variant, baseline = simulate(generator, seed_sd, 0.2)
        interval = two_level_interval(variant, baseline, num_draws=4000)
        covered += interval.low <= truth <= interval.high
    assert 930 <= covered <= 975


@pytest.mark.parametrize("seed_sd, video_sd, residual_sd", [(0.03, 0.3, 0.6), (0.0, 0.5, 0.1)])
def test_two_level_interval_on_additive_normal_noise(seed_sd, video_sd, residual_sd):
    generator = np.random.default_rng(2)
    covered = seed_only = 0
    for _ in range(1000):
        differences = (
            0.02
            + generator.normal(0, seed_sd, (SEEDS, 1))
            + generator.normal(0, video_sd, (1, VIDEOS))
            + generator.normal(0, residual_sd, (SEEDS, VIDEOS))
        )
        interval = two_level_interval(differences, np.zeros_like(differences), num_draws=4000)
        covered += interval.low <= 0.02 <= interval.high
        seeds = scipy_stats.ttest_1samp(differences.mean(axis=1), 0.0).confidence_interval()
        seed_only += seeds.low <= 0.02 <= seeds.high
    assert 930 <= covered <= 980
    if video_sd > residual_sd:
        # where the test videos dominate, the seed-level interval misses the test set's error
        assert seed_only < 800


def test_two_level_interval_is_seeded_and_contains_the_seed_interval():
    generator = np.random.default_rng(3)
    variant, baseline = simulate(generator, 0.3, 0.2)
    first = two_level_interval(variant, baseline)
    assert first == two_level_interval(variant, baseline)
    t_interval = scipy_stats.ttest_rel(variant.mean(1), baseline.mean(1)).confidence_interval()
    assert first.mean == pytest.approx(variant.mean() - baseline.mean())
    assert first.low <= t_interval.low + 0.003 and first.high >= t_interval.high - 0.003


def test_two_level_interval_undefined_with_one_seed():
    interval = two_level_interval(np.ones((1, 5)), np.zeros((1, 5)))
    assert interval.low is None and not interval.significant
    with pytest.raises(ValueError, match="seeds, videos"):
        two_level_interval(np.ones((2, 5)), np.zeros((2, 4)))


def test_pooled_mcnemar_hand_computed():
    # seed 0: variant alone right on 3 videos, baseline alone on 0; seed 1: 2 and 1
    variant = np.array([[1, 1, 1, 0, 1, 0], [1, 1, 0, 0, 1, 1]])
    baseline = np.array([[0, 0, 0, 0, 1, 0], [0, 0, 1, 0, 1, 1]])
    test = pooled_mcnemar(variant, baseline)
    assert test.variant_only == (3, 2) and test.baseline_only == (0, 1)
    assert test.seed_pvalues[0] == pytest.approx(2 * 0.5**3)  # exact: all 3 discordant one way
    assert test.seed_pvalues[1] == pytest.approx(1.0)
    # pooled: 5 of 6 discordant pairs favour the variant, two-sided exact binomial
    assert test.pvalue == pytest.approx(scipy_stats.binomtest(5, 6, 0.5).pvalue)
    with pytest.raises(ValueError, match="0/1"):
        pooled_mcnemar(variant * 2, baseline)
