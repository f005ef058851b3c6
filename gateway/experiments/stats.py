"""Small, dependency-free statistics for experiment reports.

* ``normal_cdf`` via ``math.erf``.
* ``student_t_cdf`` via the regularized incomplete beta function
  ``I_x(a, b)`` evaluated with Lentz's continued fraction (Numerical Recipes ``betacf``):
  for ``t`` with ``df`` degrees of freedom the two-sided tail is ``I_{df/(df+t²)}(df/2, 1/2)``.
* ``welch_t_test``: unequal-variance t-test with Welch–Satterthwaite degrees of freedom.
* ``two_proportion_z_test``: pooled two-proportion z-test, two-sided.
* ``mean_ci``: mean with a 95% Student-t confidence interval.
* ``wilson_interval`` / ``proportion_difference``: Wilson score interval of a rate and Newcombe's
  hybrid score interval of a difference of two rates (both stay inside [0, 1] with 0 or n events).
* ``percentile_ci`` / ``percentile_difference``: a distribution-free interval of a percentile from
  the binomial ranks around it, and the MOVER interval (Zou & Donner) of a difference of two.

Numerical stability: sums are ``math.fsum`` (exactly rounded), a sample whose values are all equal
has variance exactly 0, and two means closer than ``_REL_TOL`` of their size are equal — so two
identical samples never test as different, whatever their sizes (the "0% more expensive,
p < 0.001" of issue #26 came from a naive float sum of equal costs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_EPS = 3e-16
_TINY = 1e-300
_REL_TOL = 1e-12
Z95 = 1.959963984540054


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _betacf(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    if math.isinf(df):
        return normal_cdf(t)
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_two_sided_p(t: float, df: float) -> float:
    if math.isnan(t):
        return 1.0
    if math.isinf(df):
        return 2.0 * (1.0 - normal_cdf(abs(t)))
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def student_t_ppf(p: float, df: float) -> float:
    """The quantile of Student's t (bisection on the CDF; plenty fast for reports)."""
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def mean(values: Sequence[float]) -> float:
    """The mean from an exactly rounded sum (``math.fsum``): equal values give that value exactly."""
    return math.fsum(values) / len(values) if values else math.nan


def variance(values: Sequence[float]) -> float:
    """Sample variance (n - 1), two-pass with exact sums; exactly 0 when every value is equal."""
    n = len(values)
    if n < 2:
        return math.nan
    if min(values) == max(values):
        return 0.0
    m = mean(values)
    return math.fsum((v - m) ** 2 for v in values) / (n - 1)


def same(a: float, b: float) -> bool:
    """Two statistics equal up to rounding (relative ``_REL_TOL``)."""
    return a == b or abs(a - b) <= _REL_TOL * max(abs(a), abs(b))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True, slots=True)
class TestResult:
    statistic: float
    p_value: float
    df: float | None = None


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Two-sided Welch's t-test of mean(a) vs mean(b); NaN statistic and p=1 when undefined."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return TestResult(math.nan, 1.0, None)
    va, vb = variance(a) / na, variance(b) / nb
    se2 = va + vb
    ma, mb = mean(a), mean(b)
    diff = 0.0 if same(ma, mb) else ma - mb
    if diff == 0:
        return TestResult(0.0, 1.0, None)
    if se2 == 0:
        return TestResult(
            0.0 if diff == 0 else math.copysign(math.inf, diff), 1.0 if diff == 0 else 0.0, None
        )
    t = diff / math.sqrt(se2)
    df = se2**2 / ((va**2) / (na - 1) + (vb**2) / (nb - 1))
    return TestResult(t, student_t_two_sided_p(t, df), df)


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> TestResult:
    """Two-sided pooled z-test of x1/n1 vs x2/n2."""
    if n1 == 0 or n2 == 0:
        return TestResult(math.nan, 1.0)
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    diff = x1 / n1 - x2 / n2
    if se == 0 or x1 * n2 == x2 * n1:
        return TestResult(0.0, 1.0)
    z = diff / se
    return TestResult(z, 2.0 * (1.0 - normal_cdf(abs(z))))


@dataclass(frozen=True, slots=True)
class MeanCI:
    mean: float
    low: float
    high: float
    n: int


def mean_ci(values: Sequence[float], level: float = 0.95) -> MeanCI:
    n = len(values)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    m = mean(values)
    if n < 2:
        return MeanCI(m, math.nan, math.nan, n)
    half = student_t_ppf(0.5 + level / 2.0, n - 1) * math.sqrt(variance(values) / n)
    return MeanCI(m, m - half, m + half, n)


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with a 95% interval; ``significant`` when the interval excludes ``null``."""

    estimate: float
    low: float
    high: float

    def excludes(self, null: float = 0.0) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high)) and (self.low > null or self.high < null)


NAN_INTERVAL = Interval(math.nan, math.nan, math.nan)


def mean_difference(a: Sequence[float], b: Sequence[float]) -> Interval:
    """mean(a) - mean(b) with Welch's 95% interval (0 with a zero-width interval for equal means
    of constant samples)."""
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return NAN_INTERVAL
    ma, mb = mean(a), mean(b)
    diff = 0.0 if same(ma, mb) else ma - mb
    if na < 2 or nb < 2:
        return Interval(diff, math.nan, math.nan)
    va, vb = variance(a) / na, variance(b) / nb
    se2 = va + vb
    if se2 == 0:
        return Interval(diff, diff, diff)
    df = se2**2 / ((va**2) / (na - 1) + (vb**2) / (nb - 1))
    half = student_t_ppf(0.975, df) * math.sqrt(se2)
    return Interval(diff, diff - half, diff + half)


def wilson_interval(k: int, n: int, z: float = Z95) -> Interval:
    """The rate k/n with its Wilson score interval."""
    if n == 0:
        return NAN_INTERVAL
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return Interval(p, low, high)


def proportion_difference(k1: int, n1: int, k2: int, n2: int) -> Interval:
    """k1/n1 - k2/n2 with Newcombe's hybrid score interval (method 10, from two Wilson intervals)."""
    if n1 == 0 or n2 == 0:
        return NAN_INTERVAL
    a, b = wilson_interval(k1, n1), wilson_interval(k2, n2)
    diff = 0.0 if k1 * n2 == k2 * n1 else a.estimate - b.estimate
    low = diff - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    high = diff + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(diff, low, high)


def percentile_ci(values: Sequence[float], q: float, z: float = Z95) -> Interval:
    """Percentile ``q`` (0-100) with a distribution-free 95% interval: the order statistics at
    ranks ``n·p ± z·sqrt(n·p·(1-p))`` (normal approximation of the binomial)."""
    n = len(values)
    if n == 0:
        return NAN_INTERVAL
    ordered = sorted(values)
    estimate = percentile(ordered, q)
    p = q / 100.0
    half = z * math.sqrt(n * p * (1 - p))
    lo_rank = max(0, math.floor(n * p - half) - 1)
    hi_rank = min(n - 1, math.ceil(n * p + half) - 1)
    if n < 2:
        return Interval(estimate, math.nan, math.nan)
    return Interval(estimate, min(ordered[lo_rank], estimate), max(ordered[hi_rank], estimate))


def percentile_difference(a: Sequence[float], b: Sequence[float], q: float) -> Interval:
    """Percentile ``q`` of a minus that of b with the MOVER interval (Zou & Donner 2008) built
    from the two percentile intervals."""
    ia, ib = percentile_ci(a, q), percentile_ci(b, q)
    if math.isnan(ia.estimate) or math.isnan(ib.estimate):
        return NAN_INTERVAL
    diff = 0.0 if same(ia.estimate, ib.estimate) else ia.estimate - ib.estimate
    if any(math.isnan(x) for x in (ia.low, ia.high, ib.low, ib.high)):
        return Interval(diff, math.nan, math.nan)
    low = diff - math.sqrt((ia.estimate - ia.low) ** 2 + (ib.high - ib.estimate) ** 2)
    high = diff + math.sqrt((ia.high - ia.estimate) ** 2 + (ib.estimate - ib.low) ** 2)
    return Interval(diff, low, high)
