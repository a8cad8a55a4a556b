"""Per-video statistics: the test set's own sampling error, next to the seeds'.

The seed-level test (:mod:`~video_eleatt.compare.stats`) makes an inference *on this test
set*: its pairs vary the seed, while every run is scored on the same videos. A test set of
``I`` videos is itself a sample: at 50 % accuracy, 192 videos carry about ±3.6 points of
binomial standard error. From each run's per-video predictions (0/1 correct, ``(S, I)`` per
arm: ``S`` seeds, ``I`` test videos, the same videos for every seed), this module gives:

- :func:`two_level_interval`, on *new data from the same distribution* (new seeds and new test
  videos). The per-video differences ``d[s, i] = variant[s, i] - baseline[s, i]`` follow the
  crossed random-effects model ``d = mu + a_s + b_i + e_si`` (seed effect ``a``, video effect
  ``b``, residual ``e``; any function of independent seeds and videos decomposes so). The mean
  over the design has variance ``(E[MS_seed] + E[MS_video] - E[MS_residual]) / (S I)`` in the
  two-way ANOVA mean squares. MS_seed has only ``S - 1`` degrees of freedom, so the interval
  is the generalized confidence interval of Weerahandi (1993): each mean square's
  chi-square pivot is drawn (seeded Monte Carlo) and the interval is the quantiles of
  ``mean - Z * sqrt(variance)``. A bootstrap over seeds would not cover at 3 seeds (see
  ``MIN_PAIRS_BOOTSTRAP`` in stats); Satterthwaite's t approximation covered 93.5-94 % where
  this covers 95-97.5 % (3 seeds x 192 videos, simulated, see the tests). The variance is never
  taken below the seed-level term, so this interval contains (up to Monte Carlo error) the
  paired t-interval over seeds, which it equals when the videos add nothing.
- :func:`pooled_mcnemar`: the exact McNemar test per seed (Dietterich 1998), pooled over seeds
  as one exact test on all discordant pairs (a video one arm gets right and the other wrong;
  under "no difference" each is the variant's with probability 1/2). It treats the test
  videos as a sample and the trained models as fixed: *new test videos, these trained models*.
  The same video appears once per seed, so where seeds agree on a video the pooled count
  overstates the evidence; read it next to :func:`two_level_interval`, which accounts for it.

>>> variant = np.array([[1, 1, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]])
>>> baseline = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [1, 1, 0, 0]])
>>> round(two_level_interval(variant, baseline).mean, 4)
0.25
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar

INFERENCE_NEW_DATA = "on new data from the same distribution"


# Monte Carlo draws of the generalized pivot: the interval's ends move by well under 0.1
# points between draw seeds at this count.
NUM_PIVOT_DRAWS = 20_000


@dataclass(frozen=True)
class TwoLevelInterval:
    """Interval of the mean difference over new seeds and new test videos.

    Attributes:
        mean: Mean of ``variant - baseline`` over seeds and videos (a fraction).
        low: Lower end (None when undefined: fewer than 2 seeds or 2 videos, or no spread).
        high: Upper end.
        std_error: Plug-in standard error of ``mean``,
            ``sqrt(max(MS_seed + MS_video - MS_residual, MS_seed) / (S I))``.
        seed_mean_square: ANOVA mean square of seeds, ``I * var(seed means)``.
        video_mean_square: ANOVA mean square of videos, ``S * var(video means)``.
        residual_mean_square: ANOVA residual mean square.
        num_seeds: S.
        num_videos: I.
        confidence: Level of the interval.
    """

    mean: float
    low: float | None
    high: float | None
    std_error: float
    seed_mean_square: float
    video_mean_square: float
    residual_mean_square: float
    num_seeds: int
    num_videos: int
    confidence: float

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def two_level_interval(
    variant_correct: np.ndarray,
    baseline_correct: np.ndarray,
    confidence: float = 0.95,
    num_draws: int = NUM_PIVOT_DRAWS,
    seed: int = 0,
) -> TwoLevelInterval:
    """Interval of the mean difference covering seed and test-video sampling (module docstring).

    Args:
        variant_correct: (S, I) 0/1 (or any real score) per seed and test video.
        baseline_correct: (S, I), the same seeds and videos in the same order.
        confidence: Level of the interval, in (0, 1).
        num_draws: Monte Carlo draws of the generalized pivot.
        seed: Seed of those draws (the same inputs give the same interval).

    Returns:
        The interval; ``low``/``high`` are None when it is undefined.

    Raises:
        ValueError: shapes differ or are not 2-D.
    """
    differences = _differences(variant_correct, baseline_correct)  # (S, I)
    num_seeds, num_videos = differences.shape
    grand = float(differences.mean())
    nan = math.nan
    if num_seeds < 2 or num_videos < 2:
        return TwoLevelInterval(
            grand, None, None, nan, nan, nan, nan, num_seeds, num_videos, confidence
        )
    seed_means = differences.mean(axis=1)  # (S,)
    video_means = differences.mean(axis=0)  # (I,)
    residual = differences - seed_means[:, None] - video_means[None, :] + grand  # (S, I)
    seed_df, video_df = num_seeds - 1, num_videos - 1
    residual_df = seed_df * video_df
    ss_seed = num_videos * float(np.sum((seed_means - grand) ** 2))
    ss_video = num_seeds * float(np.sum((video_means - grand) ** 2))
    ss_residual = float(np.sum(residual**2))
    ms_seed, ms_video = ss_seed / seed_df, ss_video / video_df
    ms_residual = ss_residual / residual_df
    cells = num_seeds * num_videos
    std_error = math.sqrt(max(ms_seed + ms_video - ms_residual, ms_seed) / cells)
    low = high = None
    if std_error > 0:
        rng = np.random.default_rng(seed)
        seed_pivot = ss_seed / rng.chisquare(seed_df, num_draws)  # (num_draws,)
        combined = seed_pivot + ss_video / rng.chisquare(video_df, num_draws)
        combined -= ss_residual / rng.chisquare(residual_df, num_draws)
        # Never below the seed-level term: the paired t-test's own variance.
        variance = np.maximum(combined, seed_pivot) / cells
        pivot = grand - rng.standard_normal(num_draws) * np.sqrt(variance)
        tail = (1.0 - confidence) / 2.0
        low, high = (float(v) for v in np.quantile(pivot, [tail, 1.0 - tail]))
    return TwoLevelInterval(
        mean=grand,
        low=low,
        high=high,
        std_error=std_error,
        seed_mean_square=ms_seed,
        video_mean_square=ms_video,
        residual_mean_square=ms_residual,
        num_seeds=num_seeds,
        num_videos=num_videos,
        confidence=confidence,
    )


@dataclass(frozen=True)
class PooledMcNemar:
    """Exact McNemar tests per seed and pooled over seeds.

    Attributes:
        variant_only: Per seed, videos the variant gets right and the baseline wrong.
        baseline_only: Per seed, videos the baseline gets right and the variant wrong.
        seed_pvalues: Per seed, the two-sided exact McNemar p-value.
        pvalue: Two-sided exact p-value of all discordant pairs pooled.
        num_videos: Test videos per seed.
    """

    variant_only: tuple[int, ...]
    baseline_only: tuple[int, ...]
    seed_pvalues: tuple[float, ...]
    pvalue: float
    num_videos: int

    @property
    def num_seeds(self) -> int:
        """Seeds pooled."""
        return len(self.variant_only)


def pooled_mcnemar(variant_correct: np.ndarray, baseline_correct: np.ndarray) -> PooledMcNemar:
    """Exact McNemar test per seed, and pooled over seeds (module docstring).

    Args:
        variant_correct: (S, I) 0/1 per seed and test video.
        baseline_correct: (S, I), the same seeds and videos in the same order.

    Raises:
        ValueError: shapes differ, are not 2-D, or hold values other than 0 and 1.
    """
    variant = _as_binary(variant_correct, "variant_correct")
    baseline = _as_binary(baseline_correct, "baseline_correct")
    _differences(variant, baseline)  # shape checks
    variant_only = np.sum(variant & ~baseline, axis=1)  # (S,)
    baseline_only = np.sum(~variant & baseline, axis=1)  # (S,)
    both = np.sum(variant & baseline, axis=1)
    neither = np.sum(~variant & ~baseline, axis=1)

    def exact(b: int, c: int, agree: int, disagree: int) -> float:
        if b + c == 0:
            return 1.0
        return float(mcnemar([[agree, b], [c, disagree]], exact=True).pvalue)

    seed_pvalues = tuple(
        exact(int(b), int(c), int(a), int(n))
        for b, c, a, n in zip(variant_only, baseline_only, both, neither)
    )
    pooled = exact(
        int(variant_only.sum()), int(baseline_only.sum()), int(both.sum()), int(neither.sum())
    )
    return PooledMcNemar(
        variant_only=tuple(int(v) for v in variant_only),
        baseline_only=tuple(int(v) for v in baseline_only),
        seed_pvalues=seed_pvalues,
        pvalue=pooled,
        num_videos=int(variant.shape[1]),
    )


def _differences(variant: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    variant = np.asarray(variant, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    if variant.ndim != 2 or variant.shape != baseline.shape:
        raise ValueError(
            f"per-video scores must be (seeds, videos) arrays of one shape, got "
            f"{variant.shape} and {baseline.shape}; align the runs by seed and video first"
        )
    return variant - baseline


def _as_binary(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 correctness per video, got other values")
    return array.astype(bool)
