"""What operators read must be true (issue #26): identical arms are never significantly different
on any measure (incl. the float-summation "0% more expensive, p < 0.001"), known differences are
recovered with absolute values and intervals, feedback kinds stay apart, shadow gaps are counted,
the sticky key sees the end user behind a service key, and a killed worker's gauges go away."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.api.experiments import FeedbackIn
from gateway.experiments import reports, stats
from gateway.experiments.sticky import end_user_key
from gateway.observability import metrics

COST = (17 * 3 + 23 * 6) / 1e6  # a per-request cost that float sums do not add exactly


def _usage(
    arm: str, latency: float, *, status: str = "ok", attempts: int = 1, cost: float = COST
) -> tuple[Any, ...]:
    return (arm, status, latency, None, 17, 23, cost, False, attempts, attempts > 1)


def test_identical_arms_are_not_different_on_any_measure() -> None:
    rng = random.Random(7)
    rows = []
    for i in range(2000):
        arm = "b" if i % 5 == 0 else "a"  # 80/20: different sizes, the same distribution
        failed = rng.random() < 0.03
        rows.append(_usage(arm, rng.gauss(200, 20), status="error" if failed else "ok"))
    feedback = [("a" if i % 5 else "b", 1.0, "up" if i % 3 else "down") for i in range(300)]
    arms = reports.collect(rows, feedback)
    # The old mean (plain sum / n) of equal costs differs between samples of different sizes.
    naive = [sum(d.cost_usd) / len(d.cost_usd) for d in (arms["a"], arms["b"])]
    assert naive[0] != naive[1]
    comparison = reports.compare("b", arms["b"], "a", arms["a"])
    assert comparison["cost_per_request"]["difference"] == 0.0
    assert comparison["cost_per_request"]["p_value"] == 1.0
    assert "cost per request not significantly different" in comparison["verdict"]

    same = reports.ArmData(
        requests=500, latency_ms=[rng.gauss(100, 5) for _ in range(500)], cost_usd=[COST] * 500
    )
    twin = reports.ArmData(requests=500, latency_ms=list(same.latency_ms), cost_usd=[COST] * 500)
    result = reports.compare("b", twin, "a", same)
    assert result["significant"] == []
    for key in ("latency_mean", "latency_p50", "latency_p95", "error_rate", "cost_per_request"):
        assert result[key]["difference"] == 0.0, key


def test_known_differences_are_recovered_with_absolute_values_and_intervals() -> None:
    rng = random.Random(3)
    control = reports.ArmData()
    slower = reports.ArmData()
    for i in range(1500):
        for data, extra, error_rate, price in (
            (control, 0.0, 0.0, 1.0),
            (slower, 80.0, 0.05, 2.0),
        ):
            data.requests += 1
            data.attempts += 1
            if rng.random() < error_rate:
                data.errors += 1
                data.upstream_failures += 1
                continue
            data.latency_ms.append(rng.gauss(200, 20) + extra)
            data.cost_usd.append(COST * price * (1 + (i % 3) / 10))
    result = reports.compare("b", slower, "a", control)
    mean = result["latency_mean"]
    assert mean["significant"] and mean["ci95"][0] < 80 < mean["ci95"][1]
    assert 70 < result["latency_p95"]["difference"] < 90 and result["latency_p95"]["significant"]
    assert result["latency_p50"]["ci95"][0] < 80 < result["latency_p50"]["ci95"][1]
    err = result["error_rate"]
    assert err["significant"] and err["ci95"][0] < 0.05 < err["ci95"][1]
    assert result["cost_per_request"]["relative"] == pytest.approx(1.0, abs=0.01)
    assert "latency mean +" in result["verdict"] and "ms" in result["verdict"]


def test_retried_failures_show_in_the_upstream_failure_rate() -> None:
    rows = [_usage("a", 100.0) for _ in range(400)]
    rows += [_usage("b", 100.0, attempts=2 if i % 10 == 0 else 1) for i in range(400)]
    arms = reports.collect(rows, [])
    assert arms["b"].errors == 0 and arms["b"].upstream_failures == 40 and arms["b"].retried == 40
    result = reports.compare("b", arms["b"], "a", arms["a"])
    assert not result["error_rate"]["significant"]
    assert result["upstream_failure_rate"]["significant"]
    assert reports.arm_summary(arms["b"])["upstream"]["failure_rate"] == pytest.approx(40 / 440)


def test_feedback_kinds_are_kept_apart() -> None:
    feedback = [("a", 1.0, "up"), ("a", 0.0, "down"), ("a", 5.0, None), ("a", 4.0, None)]
    summary = reports.arm_summary(reports.collect([], feedback)["a"])["feedback"]
    assert summary["thumbs"]["up_rate"] == 0.5 and summary["thumbs"]["votes"] == 2
    assert summary["ratings"]["mean"] == 4.5 and summary["ratings"]["n"] == 2


@pytest.mark.parametrize(
    "score", [math.nan, math.inf, -math.inf, 1e308, -5, 0, 5.5, True, "3", "sideways", None]
)
def test_feedback_scores_out_of_range_are_refused(score: object) -> None:
    with pytest.raises(ValidationError, match="score must be"):
        FeedbackIn(request_id="r", score=score)


@pytest.mark.parametrize("score", ["up", "down", 1, 3.5, 5])
def test_feedback_scores_in_range_are_accepted(score: object) -> None:
    assert FeedbackIn(request_id="r", score=score).score == score


def test_intervals_stay_sane_at_the_edges() -> None:
    zero = stats.wilson_interval(0, 50)
    assert zero.estimate == 0 and zero.low == 0 and 0 < zero.high < 0.1
    diff = stats.proportion_difference(0, 100, 0, 400)
    assert diff.estimate == 0 and not diff.excludes(0)
    assert math.isnan(stats.mean_difference([], [1.0]).estimate)
    assert stats.percentile_ci([5.0] * 10, 95).low == 5.0
    assert stats.welch_t_test([COST] * 1600, [COST] * 400).p_value == 1.0
    assert stats.variance([COST] * 3) == 0.0


def _pair(error: str | None = None, agreement: float | None = 0.8, streamed: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        shadow_model="cand",
        shadow_error=error,
        primary_error=None,
        shadow_latency_ms=None if error else 50.0,
        primary_latency_ms=40.0,
        agreement=agreement,
        primary_cost_usd=0.001,
        shadow_cost_usd=0.0 if error else 0.002,
        streamed=streamed,
    )


def test_shadow_report_counts_dropped_scored_and_unscored_pairs() -> None:
    rows = [_pair() for _ in range(6)]
    rows += [_pair("dropped:queue_full", None) for _ in range(3)]
    rows += [_pair(None, None, streamed=True) for _ in range(2)]  # the streamed primary was not captured
    rows.append(_pair("timeout", None))
    model = reports.shadow_report("chat", rows)["models"]["cand"]
    assert model["pairs"] == 12 and model["dropped"] == 3 and model["completed"] == 9
    assert model["dropped_by_reason"] == {"queue_full": 3}
    assert model["scored"] == 6 and model["unscored_by_reason"] == {"no_primary_text": 2, "shadow_error": 1}
    assert model["errors"] == 1  # drops are a gap, not shadow failures


def test_judge_preference_has_an_interval() -> None:
    rows = [
        SimpleNamespace(
            error=None, primary_score=4, shadow_score=8, winner="shadow", judge_model="j", cost_usd=0
        )
        for _ in range(30)
    ] + [
        SimpleNamespace(
            error=None, primary_score=8, shadow_score=4, winner="primary", judge_model="j", cost_usd=0
        )
        for _ in range(5)
    ]
    judge = reports.judge_report(rows)
    assert judge is not None
    assert judge["shadow_preferred"]["verdict"] == "shadow better"
    low, high = judge["shadow_win_rate_ci95"]
    assert low < 30 / 35 < high


def test_sticky_key_prefers_the_end_user_behind_a_service_key() -> None:
    headers = {"x-end-user": "customer-42"}
    assert end_user_key(
        "header:x-end-user", headers=headers, metadata=None, user="u", principal_user="svc"
    ) == (
        "customer-42",
        "field",
    )
    assert end_user_key(
        "metadata:end_user", headers={}, metadata={"end_user": 7}, user=None, principal_user="svc"
    ) == (
        "7",
        "field",
    )
    assert end_user_key(None, headers=headers, metadata=None, user="u-9", principal_user="svc") == (
        "u-9",
        "user",
    )
    assert end_user_key("header:x-end-user", headers={}, metadata=None, user=None, principal_user="svc") == (
        "svc",
        "principal",
    )


def test_a_killed_workers_live_gauges_are_reaped(tmp_path: Path) -> None:
    """A child writes a livesum gauge and a counter, then is SIGKILLed: the next collection drops the
    gauge (its pid is gone) and keeps the counter."""
    code = (
        "import os, signal\n"
        "from prometheus_client import Counter, Gauge\n"
        "g = Gauge('t_open', 'x', multiprocess_mode='livesum'); g.set(4)\n"
        "c = Counter('t_done', 'x'); c.inc(3)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    child = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert child.returncode == -9
    names = sorted(p.name for p in tmp_path.iterdir())
    assert any(n.startswith("gauge_livesum_") for n in names)
    reaped = metrics.reap_dead_workers(str(tmp_path))
    assert len(reaped) == 1
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not any(n.startswith("gauge_livesum_") for n in names)
    assert any(n.startswith("counter_") for n in names)
    assert metrics.reap_dead_workers(str(tmp_path)) == []


def test_an_adopted_circuit_transition_moves_the_gauge_but_is_not_counted_again() -> None:
    from prometheus_client import REGISTRY

    from gateway.config.routing import CircuitBreakerConfig
    from gateway.routing.circuit import CircuitBreakers, CircuitState

    breakers = CircuitBreakers(CircuitBreakerConfig())
    breakers.reconfigure(CircuitBreakerConfig(), targets={"t-adopt"})

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = sample("prism_circuit_transitions_total", target="t-adopt", state="open")
    circuit = breakers._get("t-adopt")
    breakers._transition("t-adopt", circuit, CircuitState.OPEN, adopted=True)  # another worker opened it
    assert sample("prism_circuit_state", target="t-adopt") == 2
    assert sample("prism_circuit_transitions_total", target="t-adopt", state="open") == before
    breakers._transition("t-adopt", circuit, CircuitState.CLOSED)  # this worker closed it
    assert sample("prism_circuit_transitions_total", target="t-adopt", state="closed") == 1


def test_sticky_user_field_is_validated_in_the_routing_config() -> None:
    from gateway.config.routing import ConfigError, parse_config

    base = "models:\n  m: {provider: mock}\nrouting:\n  sticky_user_field: "
    assert parse_config(base + "header:x-end-user\n").routing.sticky_user_field == "header:x-end-user"
    assert parse_config(base + "metadata:end_user\n").routing.sticky_user_field == "metadata:end_user"
    with pytest.raises(ConfigError):
        parse_config(base + "cookie:session\n")


def test_a_latency_difference_below_the_practical_floor_is_not_significant() -> None:
    """Two arms whose latencies differ by a steady 0.3 ms (tight intervals that exclude 0): not a
    finding; a 5 ms difference is."""
    rng = random.Random(5)
    base = [10.0 + rng.random() * 0.01 for _ in range(2000)]
    slightly = [x + 0.3 for x in base]
    clearly = [x + 5.0 for x in base]
    for key, q in (("latency_p50", 50), ("latency_p95", 95)):
        small = reports._Diff(
            key, "ms", stats.percentile_difference(slightly, base, q), 10.0,
            min_effect=reports.MIN_LATENCY_EFFECT_MS,
        )  # fmt: skip
        assert small.interval.excludes(0.0) and not small.significant
        large = reports._Diff(
            key, "ms", stats.percentile_difference(clearly, base, q), 10.0,
            min_effect=reports.MIN_LATENCY_EFFECT_MS,
        )  # fmt: skip
        assert large.significant
