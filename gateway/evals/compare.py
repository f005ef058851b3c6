"""Comparing the variants of an evaluation run on the same cases.

Per variant: pass rate with its Wilson 95% interval, mean score with its t interval, cost and
latency. Between two variants, paired on the cases both answered: McNemar's exact test on the
discordant pass/fail pairs, and a paired t-test on the score differences. The statistics are the
experiments' own (``gateway/experiments/stats.py``); only the paired tests are added here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.experiments import stats

ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class Outcome:
    case_id: str
    passed: bool
    score: float
    latency_ms: float
    cost_usd: float
    errored: bool = False


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (a binomial test at 1/2)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = math.fsum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_t(differences: Sequence[float]) -> stats.TestResult:
    """Two-sided paired t-test of the mean difference against 0."""
    n = len(differences)
    if n < 2:
        return stats.TestResult(math.nan, 1.0, None)
    m = stats.mean(differences)
    var = stats.variance(differences)
    if stats.same(m, 0.0) or (var == 0 and m == 0):
        return stats.TestResult(0.0, 1.0, n - 1)
    if var == 0:
        return stats.TestResult(math.copysign(math.inf, m), 0.0, n - 1)
    t = m / math.sqrt(var / n)
    return stats.TestResult(t, stats.student_t_two_sided_p(t, n - 1), n - 1)


def _num(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, 6)


def summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    n = len(outcomes)
    passed = sum(1 for o in outcomes if o.passed)
    rate = stats.wilson_interval(passed, n)
    score = stats.mean_ci([o.score for o in outcomes])
    latencies = [o.latency_ms for o in outcomes if not o.errored]
    return {
        "cases": n,
        "passed": passed,
        "errors": sum(1 for o in outcomes if o.errored),
        "pass_rate": _num(rate.estimate),
        "pass_rate_ci95": [_num(rate.low), _num(rate.high)],
        "mean_score": _num(score.mean),
        "mean_score_ci95": [_num(score.low), _num(score.high)],
        "cost_usd": round(math.fsum(o.cost_usd for o in outcomes), 8),
        "cost_per_case_usd": round(math.fsum(o.cost_usd for o in outcomes) / n, 8) if n else None,
        "latency_ms_p50": _num(stats.percentile(latencies, 50)) if latencies else None,
        "latency_ms_p95": _num(stats.percentile(latencies, 95)) if latencies else None,
    }


def paired(a: Sequence[Outcome], b: Sequence[Outcome], *, max_diffs: int = 200) -> dict[str, Any]:
    """``b`` against ``a`` (the baseline) on their common cases."""
    left = {o.case_id: o for o in a}
    right = {o.case_id: o for o in b}
    common = sorted(set(left) & set(right))
    only_a = sum(1 for c in common if left[c].passed and not right[c].passed)
    only_b = sum(1 for c in common if right[c].passed and not left[c].passed)
    p_pass = mcnemar_exact(only_a, only_b)
    differences = [right[c].score - left[c].score for c in common]
    scores = paired_t(differences)
    k_a = sum(1 for c in common if left[c].passed)
    k_b = sum(1 for c in common if right[c].passed)
    delta = stats.proportion_difference(k_b, len(common), k_a, len(common))
    if p_pass < ALPHA and only_b != only_a:
        verdict = "better" if only_b > only_a else "worse"
    else:
        verdict = "no significant difference"
    diffs = [
        {
            "case_id": c,
            "baseline": left[c].passed,
            "candidate": right[c].passed,
            "score_delta": round(right[c].score - left[c].score, 6),
        }
        for c in common
        if left[c].passed != right[c].passed
    ]
    return {
        "paired_cases": len(common),
        "pass_rate_delta": _num(delta.estimate),
        "pass_rate_delta_ci95": [_num(delta.low), _num(delta.high)],
        "mcnemar": {"baseline_only": only_a, "candidate_only": only_b, "p_value": _num(p_pass)},
        "score_paired_t": {
            "mean_delta": _num(stats.mean(differences)) if differences else None,
            "t": _num(scores.statistic),
            "p_value": _num(scores.p_value),
        },
        "verdict": verdict,
        "significant": verdict != "no significant difference",
        "changed_cases": diffs[:max_diffs],
    }


def report(by_variant: Mapping[str, Sequence[Outcome]], *, baseline: str | None) -> dict[str, Any]:
    names = list(by_variant)
    base = baseline if baseline in by_variant else (names[0] if names else None)
    out: dict[str, Any] = {
        "baseline": base,
        "variants": {name: summary(outcomes) for name, outcomes in by_variant.items()},
        "comparisons": {},
    }
    if base is not None:
        for name in names:
            if name != base:
                out["comparisons"][name] = paired(by_variant[base], by_variant[name])
    return out
