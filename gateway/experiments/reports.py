"""Experiment and shadow reports from stored rows (pure functions; the admin API feeds them).

Per arm: requests, error rate, p50/p95 latency and TTFT, tokens and cost per request, feedback
mean with a 95% t-interval and the thumbs-up rate. Each non-control arm is compared with the
control: Welch's t-test for latency and cost, two-proportion z-tests for the error rate and the
thumbs-up rate, summarised in a plain verdict string.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.experiments import stats

ALPHA = 0.05
ERROR_STATUSES = frozenset({"error", "incomplete"})


@dataclass(slots=True)
class ArmData:
    requests: int = 0
    errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    thumbs_up: int = 0
    thumbs: int = 0


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else round(value, 6)


def format_p(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return "p < 0.01"
    return f"p = {p:.2f}" if p >= 0.01 else f"p = {p:.3f}"


def collect(usage_rows: Iterable[Any], feedback_rows: Iterable[Any]) -> dict[str, ArmData]:
    """usage rows: (arm, status, latency_ms, ttft_ms, prompt, completion, cost, cache_hit);
    feedback rows: (arm, score, thumb)."""
    arms: dict[str, ArmData] = {}
    for arm, status, latency, ttft, prompt, completion, cost, cache_hit in usage_rows:
        if arm is None or cache_hit or status == "rejected":
            continue
        data = arms.setdefault(arm, ArmData())
        data.requests += 1
        if status in ERROR_STATUSES:
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
        data.scores.append(float(score))
        if thumb is not None:
            data.thumbs += 1
            data.thumbs_up += thumb == "up"
    return arms


def _pct(values: Sequence[float], q: float) -> float | None:
    return _num(stats.percentile(values, q)) if values else None


def arm_summary(data: ArmData) -> dict[str, Any]:
    ci = stats.mean_ci(data.scores)
    return {
        "requests": data.requests,
        "errors": data.errors,
        "error_rate": _num(data.errors / data.requests) if data.requests else None,
        "latency_ms": {"p50": _pct(data.latency_ms, 50), "p95": _pct(data.latency_ms, 95)},
        "ttft_ms": {"p50": _pct(data.ttft_ms, 50), "p95": _pct(data.ttft_ms, 95)},
        "tokens_per_request": _num(stats.mean(data.tokens)) if data.tokens else None,
        "cost_per_request_usd": _num(stats.mean(data.cost_usd)) if data.cost_usd else None,
        "feedback": {
            "n": ci.n,
            "mean": _num(ci.mean),
            "ci95": [_num(ci.low), _num(ci.high)],
            "thumbs_up_rate": _num(data.thumbs_up / data.thumbs) if data.thumbs else None,
        },
    }


def _relative(new: float, old: float) -> float | None:
    return (new - old) / old if old else None


def compare(arm: str, data: ArmData, control_name: str, control: ArmData) -> dict[str, Any]:
    latency = stats.welch_t_test(data.latency_ms, control.latency_ms)
    cost = stats.welch_t_test(data.cost_usd, control.cost_usd)
    errors = stats.two_proportion_z_test(data.errors, data.requests, control.errors, control.requests)
    thumbs = stats.two_proportion_z_test(data.thumbs_up, data.thumbs, control.thumbs_up, control.thumbs)
    lat_rel = (
        _relative(stats.mean(data.latency_ms), stats.mean(control.latency_ms)) if data.latency_ms else None
    )
    cost_rel = _relative(stats.mean(data.cost_usd), stats.mean(control.cost_usd)) if data.cost_usd else None
    err_a = data.errors / data.requests if data.requests else math.nan
    err_c = control.errors / control.requests if control.requests else math.nan
    parts = [
        _phrase("slower", "faster", "latency", lat_rel, latency.p_value),
        _phrase("more expensive", "cheaper", "cost", cost_rel, cost.p_value),
        _rate_phrase("error rate", err_a, err_c, errors.p_value),
    ]
    if data.thumbs and control.thumbs:
        parts.append(
            _rate_phrase(
                "thumbs-up rate",
                data.thumbs_up / data.thumbs,
                control.thumbs_up / control.thumbs,
                thumbs.p_value,
            )
        )
    return {
        "control": control_name,
        "latency": {
            "relative": _num(lat_rel or math.nan),
            "t": _num(latency.statistic),
            "df": latency.df,
            "p_value": _num(latency.p_value),
        },
        "cost": {
            "relative": _num(cost_rel or math.nan),
            "t": _num(cost.statistic),
            "p_value": _num(cost.p_value),
        },
        "error_rate": {
            "difference": _num(err_a - err_c),
            "z": _num(errors.statistic),
            "p_value": _num(errors.p_value),
        },
        "thumbs_up_rate": {"z": _num(thumbs.statistic), "p_value": _num(thumbs.p_value)},
        "verdict": f"arm {arm} vs {control_name}: " + "; ".join(parts),
    }


def _phrase(worse: str, better: str, what: str, relative: float | None, p: float) -> str:
    if relative is None or math.isnan(p) or p >= ALPHA:
        return f"{what} not significantly different ({format_p(p)})"
    word = worse if relative > 0 else better
    return f"{abs(relative):.0%} {word}, {format_p(p)}"


def _rate_phrase(what: str, rate: float, control: float, p: float) -> str:
    if math.isnan(rate) or math.isnan(control) or p >= ALPHA:
        return f"{what} not significantly different ({format_p(p)})"
    direction = "higher" if rate > control else "lower"
    return f"{what} {direction} ({rate:.1%} vs {control:.1%}, {format_p(p)})"


def experiment_report(
    name: str, config: Any, arms: dict[str, ArmData], canary: dict[str, Any] | None
) -> dict[str, Any]:
    control = config.control if config is not None else next(iter(arms), None)
    names = list(config.arms) if config is not None else sorted(arms)
    for arm in names:
        arms.setdefault(arm, ArmData())
    report: dict[str, Any] = {
        "experiment": name,
        "alias": getattr(config, "alias", None),
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


def shadow_report(alias: str, rows: Iterable[Any], judgements: Iterable[Any] = ()) -> dict[str, Any]:
    """Per shadow model: error rate, latency and cost ratios to the primary, agreement distribution,
    and the judge's scores when a judge is configured (``judge_report``)."""
    by_model: dict[str, list[Any]] = {}
    for row in rows:
        by_model.setdefault(row.shadow_model, []).append(row)
    judged: dict[str, list[Any]] = {}
    for row in judgements:
        judged.setdefault(row.shadow_model, []).append(row)
    models: dict[str, Any] = {}
    for model, items in sorted(by_model.items()):
        errors = sum(1 for r in items if r.shadow_error)
        ok = [r for r in items if not r.shadow_error and r.shadow_latency_ms is not None]
        shadow_lat = [float(r.shadow_latency_ms) for r in ok]
        primary_lat = [float(r.primary_latency_ms) for r in items if r.primary_latency_ms is not None]
        agreements = [float(r.agreement) for r in items if r.agreement is not None]
        primary_cost = sum(float(r.primary_cost_usd or 0) for r in ok)
        shadow_cost = sum(float(r.shadow_cost_usd or 0) for r in ok)
        p50_shadow, p50_primary = _pct(shadow_lat, 50), _pct(primary_lat, 50)
        buckets = [0] * 10
        for value in agreements:
            buckets[min(int(value * 10), 9)] += 1
        models[model] = {
            "pairs": len(items),
            "errors": errors,
            "error_rate": _num(errors / len(items)),
            "errors_by_type": _count(r.shadow_error for r in items if r.shadow_error),
            "shadow_latency_ms": {"p50": p50_shadow, "p95": _pct(shadow_lat, 95)},
            "primary_latency_ms": {"p50": p50_primary, "p95": _pct(primary_lat, 95)},
            "latency_ratio_p50": _num(p50_shadow / p50_primary) if p50_shadow and p50_primary else None,
            "cost_ratio": _num(shadow_cost / primary_cost) if primary_cost else None,
            "shadow_cost_usd": _num(sum(float(r.shadow_cost_usd or 0) for r in items)),
            "agreement": {
                "n": len(agreements),
                "mean": _num(stats.mean(agreements)) if agreements else None,
                "p10": _pct(agreements, 10),
                "p50": _pct(agreements, 50),
                "p90": _pct(agreements, 90),
                "histogram": {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": n for i, n in enumerate(buckets)},
            },
            "judge": judge_report(judged.get(model, [])),
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
        "tie_rate": _num(ties / len(ok)) if ok else None,
        "primary_win_rate": _num((len(ok) - wins - ties) / len(ok)) if ok else None,
        "judge_cost_usd": _num(sum(float(r.cost_usd or 0) for r in rows)),
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out
