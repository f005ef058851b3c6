"""Experiment and shadow reports from stored rows (pure functions; the admin API feeds them).

Per arm: requests, error rate (Wilson 95% interval), latency mean/p50/p95 with intervals, TTFT,
tokens and cost per request, upstream attempts, retries-or-fallbacks and the upstream failure rate
beside the client-visible error rate, and feedback kept apart by kind: the thumbs-up rate (of
``up``/``down`` votes) and the mean of bounded ratings (1-5) — never averaged together.

Each non-control arm is compared with the control, always as an absolute difference with a 95%
interval plus the relative change: Welch's t for the latency and cost means, MOVER intervals for
the p50/p95 latency differences, Newcombe's interval and a two-proportion z-test for error rates
and the thumbs-up rate. A difference is called significant only when its interval excludes 0
(and, for tests with a p-value, p < 0.05); identical samples give a difference of exactly 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.experiments import stats

ALPHA = 0.05
MIN_LATENCY_EFFECT_MS = 1.0
"""A latency difference smaller than this is never called significant: requests that run at the same
moment share the machine's load, so latency samples are not independent and an interval can exclude
0 for a few tenths of a millisecond between identical arms — not a finding anyone can act on."""
ERROR_STATUSES = frozenset({"error", "incomplete"})
RATING_RANGE = (1.0, 5.0)
"""Numeric feedback scores are ratings in this closed range (``POST /v1/feedback``)."""


@dataclass(slots=True)
class ArmData:
    requests: int = 0
    errors: int = 0
    attempts: int = 0
    """Upstream attempts (every try on every target) of the arm's requests."""
    upstream_failures: int = 0
    """Attempts that failed (retried, fell back, or ended the request)."""
    retried: int = 0
    """Requests that needed more than one attempt (retry or fallback)."""
    fallbacks: int = 0
    latency_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    ratings: list[float] = field(default_factory=list)
    thumbs_up: int = 0
    thumbs: int = 0


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else round(value, 6)


def format_p(p: float) -> str:
    if math.isnan(p):
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return "p < 0.01"
    return f"p = {p:.2f}"


def collect(usage_rows: Iterable[Any], feedback_rows: Iterable[Any]) -> dict[str, ArmData]:
    """usage rows: (arm, status, latency_ms, ttft_ms, prompt, completion, cost, cache_hit[, attempts,
    fallback_used]); feedback rows: (arm, score, thumb) — a row with a thumb is a vote, else a rating."""
    arms: dict[str, ArmData] = {}
    for row in usage_rows:
        arm, status, latency, ttft, prompt, completion, cost, cache_hit = row[:8]
        attempts, fallback = (row[8], row[9]) if len(row) >= 10 else (None, False)
        if arm is None or cache_hit or status == "rejected":
            continue
        data = arms.setdefault(arm, ArmData())
        data.requests += 1
        failed = status in ERROR_STATUSES
        if attempts is not None:
            tries = max(int(attempts), 1)
            data.attempts += tries
            data.upstream_failures += tries - (0 if failed else 1)
            data.retried += tries > 1
        data.fallbacks += bool(fallback)
        if failed:
            data.errors += 1
            continue
        data.latency_ms.append(float(latency))
        if ttft is not None:
            data.ttft_ms.append(float(ttft))
        data.cost_usd.append(float(cost or 0.0))
        data.tokens.append(float((prompt or 0) + (completion or 0)))
    for arm, score, thumb in feedback_rows:
        if arm is None:
            continue
        data = arms.setdefault(arm, ArmData())
        if thumb is not None:
            data.thumbs += 1
            data.thumbs_up += thumb == "up"
        elif score is not None and RATING_RANGE[0] <= float(score) <= RATING_RANGE[1]:
            data.ratings.append(float(score))
    return arms


def _pct(values: Sequence[float], q: float) -> float | None:
    return _num(stats.percentile(values, q)) if values else None


def _interval(interval: stats.Interval) -> dict[str, Any]:
    return {
        "value": _num(interval.estimate),
        "ci95": [_num(interval.low), _num(interval.high)],
    }


def _rate(k: int, n: int) -> dict[str, Any]:
    return {"n": n, **_interval(stats.wilson_interval(k, n))}


def arm_summary(data: ArmData) -> dict[str, Any]:
    ratings = stats.mean_ci(data.ratings)
    cost = stats.mean_ci(data.cost_usd)
    latency_mean = stats.mean_ci(data.latency_ms)
    return {
        "requests": data.requests,
        "errors": data.errors,
        "error_rate": _num(data.errors / data.requests) if data.requests else None,
        "error_rate_ci95": _rate(data.errors, data.requests)["ci95"],
        "upstream": {
            "attempts": data.attempts,
            "failures": data.upstream_failures,
            "failure_rate": _num(data.upstream_failures / data.attempts) if data.attempts else None,
            "retried_requests": data.retried,
            "fallbacks": data.fallbacks,
        },
        "latency_ms": {
            "mean": _num(latency_mean.mean),
            "p50": _pct(data.latency_ms, 50),
            "p95": _pct(data.latency_ms, 95),
            "p50_ci95": _interval(stats.percentile_ci(data.latency_ms, 50))["ci95"],
            "p95_ci95": _interval(stats.percentile_ci(data.latency_ms, 95))["ci95"],
        },
        "ttft_ms": {"p50": _pct(data.ttft_ms, 50), "p95": _pct(data.ttft_ms, 95)},
        "tokens_per_request": _num(stats.mean(data.tokens)) if data.tokens else None,
        "cost_per_request_usd": _num(cost.mean) if data.cost_usd else None,
        "cost_per_request_ci95": [_num(cost.low), _num(cost.high)],
        "feedback": {
            "thumbs": {
                "votes": data.thumbs,
                "up": data.thumbs_up,
                "up_rate": _num(data.thumbs_up / data.thumbs) if data.thumbs else None,
                "ci95": _rate(data.thumbs_up, data.thumbs)["ci95"],
            },
            "ratings": {
                "scale": list(RATING_RANGE),
                "n": ratings.n,
                "mean": _num(ratings.mean),
                "ci95": [_num(ratings.low), _num(ratings.high)],
            },
            "n": data.thumbs + ratings.n,
            "thumbs_up_rate": _num(data.thumbs_up / data.thumbs) if data.thumbs else None,
        },
    }


def _relative(diff: float, base: float) -> float | None:
    return diff / base if base and not math.isnan(diff) and not math.isnan(base) else None


@dataclass(frozen=True, slots=True)
class _Diff:
    what: str
    unit: str
    interval: stats.Interval
    base: float
    p_value: float | None = None
    min_effect: float = 0.0  # |difference| below this is not significant (practical floor)

    @property
    def significant(self) -> bool:
        if self.interval.estimate == 0 or math.isnan(self.interval.estimate):
            return False
        if abs(self.interval.estimate) < self.min_effect:
            return False
        return self.interval.excludes(0.0) and (self.p_value is None or self.p_value < ALPHA)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "difference": _num(self.interval.estimate),
            "ci95": [_num(self.interval.low), _num(self.interval.high)],
            "relative": _num(_relative(self.interval.estimate, self.base)),
            "control": _num(self.base),
            "significant": self.significant,
        }
        if self.p_value is not None:
            out["p_value"] = _num(self.p_value)
        return out

    def phrase(self) -> str:
        iv = self.interval
        if math.isnan(iv.estimate):
            return f"{self.what}: no data"
        ci = f"95% CI {_fmt(iv.low, self.unit)} to {_fmt(iv.high, self.unit)}"
        p = f", {format_p(self.p_value)}" if self.p_value is not None else ""
        rel = _relative(iv.estimate, self.base)
        rel_text = f" ({rel:+.1%})" if rel is not None else ""
        if not self.significant:
            value = _fmt(iv.estimate, self.unit)
            return f"{self.what} not significantly different ({value}{rel_text}, {ci}{p})"
        return f"{self.what} {_fmt(iv.estimate, self.unit)}{rel_text} ({ci}{p})"


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "ms":
        return f"{value:+.1f} ms"
    if unit == "usd":
        return f"{value:+.6f} USD"
    return f"{value * 100:+.1f} pp"


def compare(arm: str, data: ArmData, control_name: str, control: ArmData) -> dict[str, Any]:
    c_lat, a_lat = control.latency_ms, data.latency_ms
    diffs = {
        "latency_mean": _Diff(
            "latency mean",
            "ms",
            stats.mean_difference(a_lat, c_lat),
            stats.mean(c_lat),
            stats.welch_t_test(a_lat, c_lat).p_value,
            min_effect=MIN_LATENCY_EFFECT_MS,
        ),
        "latency_p50": _Diff(
            "latency p50",
            "ms",
            stats.percentile_difference(a_lat, c_lat, 50),
            stats.percentile(c_lat, 50),
            min_effect=MIN_LATENCY_EFFECT_MS,
        ),
        "latency_p95": _Diff(
            "latency p95",
            "ms",
            stats.percentile_difference(a_lat, c_lat, 95),
            stats.percentile(c_lat, 95),
            min_effect=MIN_LATENCY_EFFECT_MS,
        ),
        "error_rate": _Diff(
            "error rate",
            "rate",
            stats.proportion_difference(data.errors, data.requests, control.errors, control.requests),
            control.errors / control.requests if control.requests else math.nan,
            stats.two_proportion_z_test(data.errors, data.requests, control.errors, control.requests).p_value,
        ),
        "upstream_failure_rate": _Diff(
            "upstream failure rate",
            "rate",
            stats.proportion_difference(
                data.upstream_failures, data.attempts, control.upstream_failures, control.attempts
            ),
            control.upstream_failures / control.attempts if control.attempts else math.nan,
            stats.two_proportion_z_test(
                data.upstream_failures, data.attempts, control.upstream_failures, control.attempts
            ).p_value,
        ),
        "cost_per_request": _Diff(
            "cost per request",
            "usd",
            stats.mean_difference(data.cost_usd, control.cost_usd),
            stats.mean(control.cost_usd),
            stats.welch_t_test(data.cost_usd, control.cost_usd).p_value,
        ),
    }
    if data.thumbs and control.thumbs:
        diffs["thumbs_up_rate"] = _Diff(
            "thumbs-up rate",
            "rate",
            stats.proportion_difference(data.thumbs_up, data.thumbs, control.thumbs_up, control.thumbs),
            control.thumbs_up / control.thumbs,
            stats.two_proportion_z_test(
                data.thumbs_up, data.thumbs, control.thumbs_up, control.thumbs
            ).p_value,
        )
    if len(data.ratings) >= 2 and len(control.ratings) >= 2:
        diffs["rating_mean"] = _Diff(
            "rating mean",
            "points",
            stats.mean_difference(data.ratings, control.ratings),
            stats.mean(control.ratings),
            stats.welch_t_test(data.ratings, control.ratings).p_value,
        )
    verdict_keys = ("latency_mean", "latency_p95", "error_rate", "upstream_failure_rate", "cost_per_request")
    parts = [diffs[k].phrase() for k in (*verdict_keys, "thumbs_up_rate", "rating_mean") if k in diffs]
    out: dict[str, Any] = {"control": control_name}
    out.update({key: diff.as_dict() for key, diff in diffs.items()})
    # Kept for clients of the first report version.
    out["latency"] = {**diffs["latency_mean"].as_dict()}
    out["cost"] = {**diffs["cost_per_request"].as_dict()}
    out["significant"] = sorted(key for key, diff in diffs.items() if diff.significant)
    out["verdict"] = f"arm {arm} vs {control_name}: " + "; ".join(parts)
    return out


def experiment_report(
    name: str,
    config: Any,
    arms: dict[str, ArmData],
    canary: dict[str, Any] | None,
    *,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    control = config.control if config is not None else next(iter(arms), None)
    names = list(config.arms) if config is not None else sorted(arms)
    for arm in names:
        arms.setdefault(arm, ArmData())
    report: dict[str, Any] = {
        "experiment": name,
        "alias": getattr(config, "alias", None),
        "run": run,
        "control": control,
        "arms": {arm: arm_summary(arms[arm]) for arm in names},
        "comparisons": {},
        "canary": canary,
    }
    if control is not None:
        for arm in names:
            if arm != control:
                report["comparisons"][arm] = compare(arm, arms[arm], control, arms[control])
    report["verdicts"] = [c["verdict"] for c in report["comparisons"].values()]
    return report


DROPPED_PREFIX = "dropped:"
"""``shadow_results.shadow_error`` of a pair that was planned but never ran (``dropped:queue_full``,
``dropped:spend_cap``): a counted gap, not a shadow failure."""


def shadow_report(alias: str, rows: Iterable[Any], judgements: Iterable[Any] = ()) -> dict[str, Any]:
    """Per shadow model: how many pairs were planned, dropped (by reason), completed, scored
    (agreement computed) and judged, why the others were not scored; error rate, latency and cost
    ratios to the primary, agreement distribution, and the judge's scores (``judge_report``)."""
    by_model: dict[str, list[Any]] = {}
    for row in rows:
        by_model.setdefault(row.shadow_model, []).append(row)
    judged: dict[str, list[Any]] = {}
    for row in judgements:
        judged.setdefault(row.shadow_model, []).append(row)
    models: dict[str, Any] = {}
    for model, planned in sorted(by_model.items()):
        dropped = [r for r in planned if (r.shadow_error or "").startswith(DROPPED_PREFIX)]
        items = [r for r in planned if not (r.shadow_error or "").startswith(DROPPED_PREFIX)]
        errors = sum(1 for r in items if r.shadow_error)
        ok = [r for r in items if not r.shadow_error and r.shadow_latency_ms is not None]
        shadow_lat = [float(r.shadow_latency_ms) for r in ok]
        primary_lat = [float(r.primary_latency_ms) for r in items if r.primary_latency_ms is not None]
        agreements = [float(r.agreement) for r in items if r.agreement is not None]
        primary_cost = math.fsum(float(r.primary_cost_usd or 0) for r in ok)
        shadow_cost = math.fsum(float(r.shadow_cost_usd or 0) for r in ok)
        p50_shadow, p50_primary = _pct(shadow_lat, 50), _pct(primary_lat, 50)
        buckets = [0] * 10
        for value in agreements:
            buckets[min(int(value * 10), 9)] += 1
        unscored = _count(
            "primary_error" if r.primary_error else "shadow_error" if r.shadow_error else "no_primary_text"
            for r in items
            if r.agreement is None
        )
        judge = judge_report(judged.get(model, []))
        models[model] = {
            "pairs": len(planned),
            "dropped": len(dropped),
            "dropped_by_reason": _count(r.shadow_error[len(DROPPED_PREFIX) :] for r in dropped),
            "completed": len(items),
            "scored": len(agreements),
            "unscored_by_reason": unscored,
            "judged": judge["judged"] if judge is not None else 0,
            "streamed": sum(1 for r in items if r.streamed),
            "errors": errors,
            "error_rate": _num(errors / len(items)) if items else None,
            "errors_by_type": _count(r.shadow_error for r in items if r.shadow_error),
            "shadow_latency_ms": {"p50": p50_shadow, "p95": _pct(shadow_lat, 95)},
            "primary_latency_ms": {"p50": p50_primary, "p95": _pct(primary_lat, 95)},
            "latency_ratio_p50": _num(p50_shadow / p50_primary) if p50_shadow and p50_primary else None,
            "cost_ratio": _num(shadow_cost / primary_cost) if primary_cost else None,
            "shadow_cost_usd": _num(math.fsum(float(r.shadow_cost_usd or 0) for r in items)),
            "agreement": {
                "n": len(agreements),
                "mean": _num(stats.mean(agreements)) if agreements else None,
                "p10": _pct(agreements, 10),
                "p50": _pct(agreements, 50),
                "p90": _pct(agreements, 90),
                "histogram": {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": n for i, n in enumerate(buckets)},
            },
            "judge": judge,
        }
    return {"alias": alias, "models": models}


def judge_report(rows: Sequence[Any]) -> dict[str, Any] | None:
    """Judge scores of one shadow model's pairs: calls, failures by kind, score distributions
    (1-10) of both sides, the shadow's win / tie / loss rates and the mean score difference."""
    if not rows:
        return None
    ok = [r for r in rows if r.error is None and r.primary_score is not None and r.shadow_score is not None]
    shadow_scores = [float(r.shadow_score) for r in ok]
    primary_scores = [float(r.primary_score) for r in ok]
    wins = sum(1 for r in ok if r.winner == "shadow")
    ties = sum(1 for r in ok if r.winner == "tie")

    def distribution(values: list[float]) -> dict[str, Any]:
        counts = _count(str(int(v)) for v in values)
        return {
            "mean": _num(stats.mean(values)) if values else None,
            "p50": _pct(values, 50),
            "histogram": {str(score): counts.get(str(score), 0) for score in range(1, 11)},
        }

    return {
        "calls": len(rows),
        "judged": len(ok),
        "errors": len(rows) - len(ok),
        "errors_by_type": _count(r.error for r in rows if r.error),
        "judge_models": sorted({r.judge_model for r in rows}),
        "shadow_score": distribution(shadow_scores),
        "primary_score": distribution(primary_scores),
        "mean_difference": _num(
            stats.mean([s - p for s, p in zip(shadow_scores, primary_scores, strict=True)])
        )
        if ok
        else None,
        "shadow_win_rate": _num(wins / len(ok)) if ok else None,
        "shadow_win_rate_ci95": _interval(stats.wilson_interval(wins, len(ok)))["ci95"],
        "shadow_preferred": _preference(wins, len(ok) - wins - ties),
        "tie_rate": _num(ties / len(ok)) if ok else None,
        "primary_win_rate": _num((len(ok) - wins - ties) / len(ok)) if ok else None,
        "judge_cost_usd": _num(math.fsum(float(r.cost_usd or 0) for r in rows)),
    }


def _preference(wins: int, losses: int) -> dict[str, Any]:
    """The shadow's share of the decided pairs (ties left out) with its Wilson interval; it is
    better or worse than the primary only when the interval excludes one half (a sign test)."""
    interval = stats.wilson_interval(wins, wins + losses)
    verdict = (
        "no decided pairs"
        if wins + losses == 0
        else "shadow better"
        if interval.low > 0.5
        else "primary better"
        if interval.high < 0.5
        else "not significantly different"
    )
    return {"decided": wins + losses, **_interval(interval), "verdict": verdict}


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out
