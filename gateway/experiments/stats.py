"""Small, dependency-free statistics for experiment reports.

* ``normal_cdf`` via ``math.erf``.
* ``student_t_cdf`` via the regularized incomplete beta function
  ``I_x(a, b)`` evaluated with Lentz's continued fraction (Numerical Recipes ``betacf``):
  for ``t`` with ``df`` degrees of freedom the two-sided tail is ``I_{df/(df+t²)}(df/2, 1/2)``.
* ``welch_t_test``: unequal-variance t-test with Welch–Satterthwaite degrees of freedom.
* ``two_proportion_z_test``: pooled two-proportion z-test, two-sided.
* ``mean_ci``: mean with a 95% Student-t confidence interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_EPS = 3e-16
_TINY = 1e-300


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
    return sum(values) / len(values) if values else math.nan


def variance(values: Sequence[float]) -> float:
    """Sample variance (n - 1)."""
    n = len(values)
    if n < 2:
        return math.nan
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / (n - 1)


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
    diff = mean(a) - mean(b)
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
    if se == 0:
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
