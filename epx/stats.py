"""Statistics across seeds, pure Python: means with Student t intervals and paired differences.

A comparison of methods runs each method with the same seeds; the seeds are the experimental
units. `mean_interval` is the mean of one method's per-seed values with its two-sided t interval
(n - 1 degrees of freedom); `paired_difference` takes method minus baseline seed by seed and gives
the same interval for the mean difference, which removes what the seed does to both. A verdict
is "within seed noise" when the interval holds 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over `n` values with its two-sided interval (NaN bounds when n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def holds_zero(self) -> bool:
        """Whether 0 lies in the interval; False when it is undefined (NaN bounds, n < 2)."""
        if math.isnan(self.low) or math.isnan(self.high):
            return False
        return self.low <= 0 <= self.high


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Lentz's continued fraction of the incomplete beta function (Numerical Recipes' betacf)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))  # fmt: skip
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value below which a fraction `p` of Student's t (`df` degrees of freedom) lies."""
    assert 0.0 < p < 1.0 and df > 0, f"need 0 < p < 1 and df > 0, got p={p}, df={df}"
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):  # bisection to float precision
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of `values` (one per seed) with its two-sided Student t interval."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = sum(finite) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(
    method: Mapping[int, float], baseline: Mapping[int, float], level: float = LEVEL
) -> Interval:
    """Method minus baseline over the seeds both have a finite value for, with its interval."""
    seeds = sorted(
        seed
        for seed in set(method) & set(baseline)
        if all(v is not None and math.isfinite(v) for v in (method[seed], baseline[seed]))
    )
    return mean_interval([method[seed] - baseline[seed] for seed in seeds], level)


def verdict(difference: Interval, unit: str = "", higher_is_better: bool = True) -> str:
    """A plain sentence on a paired difference: within seed noise, or better/worse by how much."""
    if difference.n < 2:
        return f"{difference.n} paired seed(s): too few for an interval"
    if difference.holds_zero():
        return (f"within seed noise ({difference.mean:+.3g}{unit} "
                f"[{difference.low:+.3g}, {difference.high:+.3g}])")  # fmt: skip
    word = "better" if (difference.mean > 0) == higher_is_better else "worse"
    return (f"{word} by {abs(difference.mean):.3g}{unit} "
            f"[{difference.low:+.3g}, {difference.high:+.3g}]")  # fmt: skip
