"""Power of a paired comparison: what a design with ``n`` pairs can resolve.

Given the observed standard deviation of the paired differences (``sd``), the two-sided
paired t-test at level ``alpha`` (statsmodels' ``TTestPower``, the power of a one-sample t-test
on the differences, i.e. the noncentral t distribution with ``n - 1`` degrees of freedom and
noncentrality ``sqrt(n) * difference / sd``) gives:

- the smallest difference detected with probability ``power`` (80 % by default) at this ``n``;
- the power to detect a stated difference (a comparison config key, 2 points by default: the
  size of the paper's RGB gains);
- the number of pairs (seeds, or seeds x splits) needed to detect the stated difference.

These figures use the *observed* SD, itself uncertain at small ``n`` (Colas, Sigaud and
Oudeyer 2018, "How Many Random Seeds?"): they say how sensitive this design is, not what the
true difference is.

>>> analysis = power_analysis(n=3, std_difference=4.0, target_difference=2.0)
>>> round(analysis.power_at_target, 2), analysis.pairs_needed
(0.08, 34)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from statsmodels.stats.power import TTestPower

DEFAULT_POWER = 0.8
# Past this many pairs the answer is "more than this" (a tiny effect against a large SD).
MAX_PAIRS = 1_000_000


@dataclass(frozen=True)
class PowerAnalysis:
    """What a paired design resolves, in the units of its differences.

    Attributes:
        n: Pairs in the design.
        std_difference: Sample SD of the paired differences (``ddof=1``).
        alpha: Two-sided significance level.
        power: The power the figures below are for (e.g. 0.8).
        target_difference: The stated difference of interest (e.g. 2 points).
        detectable_difference: Smallest |mean difference| detected with ``power`` at ``n``
            (None when undefined: ``n < 2`` or ``std_difference`` is 0 or NaN).
        power_at_target: Power to detect ``target_difference`` at ``n`` (None when undefined).
        pairs_needed: Pairs needed to detect ``target_difference`` with ``power`` (None when
            undefined or more than :data:`MAX_PAIRS`).
    """

    n: int
    std_difference: float
    alpha: float
    power: float
    target_difference: float
    detectable_difference: float | None
    power_at_target: float | None
    pairs_needed: int | None

    @property
    def underpowered(self) -> bool:
        """True when this design detects ``target_difference`` with less than ``power``."""
        return self.power_at_target is not None and self.power_at_target < self.power


def power_analysis(
    n: int,
    std_difference: float,
    target_difference: float,
    alpha: float = 0.05,
    power: float = DEFAULT_POWER,
) -> PowerAnalysis:
    """Detectable difference, power at the target and pairs needed, for a paired t-test.

    Args:
        n: Pairs (>= 2 for anything to be defined).
        std_difference: Sample SD of the paired differences.
        target_difference: Difference of interest, same units as ``std_difference`` (> 0).
        alpha: Two-sided significance level.
        power: Wanted power, in (0, 1).

    Returns:
        The analysis; undefined figures are None.

    Raises:
        ValueError: ``target_difference`` <= 0, or ``alpha`` / ``power`` outside (0, 1).
    """
    if not target_difference > 0:
        raise ValueError(
            f"target_difference must be > 0 (a difference of interest), got {target_difference}"
        )
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    defined = n >= 2 and math.isfinite(std_difference) and std_difference > 0
    detectable = power_at_target = pairs_needed = None
    if defined:
        solver = TTestPower()
        effect = float(solver.solve_power(nobs=n, alpha=alpha, power=power))
        detectable = effect * std_difference
        power_at_target = float(
            solver.power(effect_size=target_difference / std_difference, nobs=n, alpha=alpha)
        )
        pairs_needed = pairs_for(target_difference / std_difference, alpha, power)
    return PowerAnalysis(
        n=n,
        std_difference=std_difference,
        alpha=alpha,
        power=power,
        target_difference=target_difference,
        detectable_difference=detectable,
        power_at_target=power_at_target,
        pairs_needed=pairs_needed,
    )


def pairs_for(effect_size: float, alpha: float = 0.05, power: float = DEFAULT_POWER) -> int | None:
    """Smallest ``n >= 2`` whose paired t-test detects ``effect_size`` (mean / SD of the
    differences) with at least ``power``; None beyond :data:`MAX_PAIRS`."""
    solver = TTestPower()

    def power_at(n: int) -> float:
        return float(solver.power(effect_size=effect_size, nobs=n, alpha=alpha))

    if power_at(2) >= power:
        return 2
    if power_at(MAX_PAIRS) < power:
        return None
    # Power grows with n: double to bracket the answer, then bisect (statsmodels' own
    # solve_power for nobs fails to converge for some inputs).
    low, high = 2, 4
    while power_at(high) < power:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if power_at(middle) >= power:
            high = middle
        else:
            low = middle
    return high
