"""Experiments: statistics against known values, ROUGE-L, sticky assignment, canary state machine."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from gateway.experiments import stats
from gateway.experiments.agreement import rouge_l_f1, tokens
from gateway.experiments.canary import CanaryState
from gateway.experiments.config import CanaryConfig, CanaryStep
from gateway.experiments.runtime import Experiments
from gateway.routing.config import ConfigError, parse_config
from gateway.usage.record import UsageRecord, UsageStatus

# -- statistics (reference values from scipy 1.17 / Wikipedia's Welch example) ---------------------

WELCH_A = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
WELCH_B = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_normal_cdf() -> None:
    assert stats.normal_cdf(0) == pytest.approx(0.5)
    assert stats.normal_cdf(1.959963984540054) == pytest.approx(0.975, abs=1e-12)
    assert stats.normal_cdf(-1) == pytest.approx(0.15865525393145707, abs=1e-12)


def test_incomplete_beta_and_student_t() -> None:
    assert stats.betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)
    assert stats.betainc(0.5, 7.5, 0.9) == pytest.approx(0.9999999932897103, abs=1e-12)
    assert stats.student_t_cdf(2.0, 10) == pytest.approx(0.9633059826146299, abs=1e-10)
    assert stats.student_t_cdf(-3.5, 4.5) == pytest.approx(0.010270844984692789, abs=1e-10)
    assert stats.student_t_cdf(1.0, 1) == pytest.approx(0.75, abs=1e-12)  # Cauchy
    t = 1.3
    assert stats.student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert stats.student_t_ppf(0.975, 10) == pytest.approx(2.228138851986274, abs=1e-8)
    assert stats.student_t_two_sided_p(2.0, 1e6) == pytest.approx(2 * (1 - stats.normal_cdf(2.0)), abs=1e-5)


def test_welch_t_test_known_values() -> None:
    result = stats.welch_t_test(WELCH_A, WELCH_B)
    assert result.statistic == pytest.approx(-2.455356398286006, abs=1e-9)
    assert result.df == pytest.approx(24.988529290231416, abs=1e-9)
    assert result.p_value == pytest.approx(0.021378001462866992, abs=1e-9)
    assert stats.welch_t_test([1.0], [2.0, 3.0]).p_value == 1.0
    assert stats.welch_t_test([1.0, 1.0], [1.0, 1.0]).p_value == 1.0


def test_two_proportion_z_test() -> None:
    result = stats.two_proportion_z_test(45, 100, 30, 100)
    assert result.statistic == pytest.approx(2.1908902300206643, abs=1e-9)
    assert result.p_value == pytest.approx(0.028459736916310146, abs=1e-9)
    assert stats.two_proportion_z_test(0, 10, 0, 10).p_value == 1.0


def test_mean_ci_and_percentile() -> None:
    ci = stats.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451051977987 * math.sqrt(2.5 / 5)
    assert (ci.mean, ci.low, ci.high) == pytest.approx((3.0, 3.0 - half, 3.0 + half), abs=1e-7)
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert stats.percentile(list(map(float, range(101))), 95) == pytest.approx(95.0)


# -- ROUGE-L ---------------------------------------------------------------------------------------


def test_rouge_l() -> None:
    assert rouge_l_f1("The cat sat on the mat.", "the cat  sat on the MAT") == 1.0
    # LCS("a b c d", "a c e") = 2 → P=2/3, R=2/4 → F1 = 4/7
    assert rouge_l_f1("a b c d", "a c e") == pytest.approx(4 / 7)
    assert rouge_l_f1("", "") == 1.0
    assert rouge_l_f1("hello", "") == 0.0
    assert rouge_l_f1("x y", "z w") == 0.0
    assert tokens("안녕하세요, 세계!") == ["안녕하세요", "세계"]
    assert rouge_l_f1("ｆｕｌｌ width", "full WIDTH") == 1.0  # NFKC


# -- assignment ------------------------------------------------------------------------------------


def _config(weights: tuple[float, float], *, canary: str = "") -> str:
    return f"""
models:
  a: {{provider: mock}}
  b: {{provider: mock}}
experiments:
  exp:
    alias: chat
    control: a
    sticky: user
    arms:
      a: {{model: a, weight: {weights[0]}}}
      b: {{models: [b, a], weight: {weights[1]}}}
{canary}
"""


def _assign_all(exps: Experiments, users: list[str]) -> dict[str, str]:
    out = {}
    for user in users:
        assignment = exps.assign("chat", sticky={"user": user}, request_id="r")
        assert assignment is not None
        out[user] = assignment.arm
    return out


def test_assignment_sticky_split_and_weight_change_stability() -> None:
    exps = Experiments()
    exps.configure(parse_config(_config((80, 20))))
    users = [f"user-{i}" for i in range(20000)]
    first = _assign_all(exps, users)
    assert _assign_all(exps, users) == first  # sticky
    share = Counter(first.values())["b"] / len(users)
    assert share == pytest.approx(0.2, abs=0.015)
    assert exps.assign("chat", sticky={"user": "user-1"}, request_id="x") == exps.assign(
        "chat", sticky={"user": "user-1"}, request_id="y"
    )
    assert exps.assign("chat", sticky={"user": "u"}, request_id="x").chain in {("a",), ("b", "a")}  # type: ignore[union-attr]

    exps.configure(parse_config(_config((70, 30))))
    second = _assign_all(exps, users)
    moved = [u for u in users if first[u] != second[u]]
    # only users in the boundary range [0.7, 0.8) move, and only from a to b
    assert all(first[u] == "a" and second[u] == "b" for u in moved)
    assert len(moved) / len(users) == pytest.approx(0.1, abs=0.015)


def test_experiment_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="unknown model 'zzz'"):
        parse_config(_config((1, 1)).replace("models: [b, a]", "models: [zzz]"))
    with pytest.raises(ConfigError, match="control"):
        parse_config(_config((1, 1)).replace("control: a", "control: q"))
    with pytest.raises(ConfigError, match="name of a model"):
        parse_config(_config((1, 1)).replace("alias: chat", "alias: a"))


# -- canary state machine --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _canary(**overrides: object) -> CanaryConfig:
    data: dict[str, object] = {
        "arm": "b",
        "steps": [
            CanaryStep(percent=10, after_requests=20),
            CanaryStep(percent=50, after_s=60),
            CanaryStep(percent=100),
        ],
        "min_samples": 30,
        "window": 100,
        "max_error_rate_increase": 0.05,
        "max_p95_latency_increase": 0.5,
        "latency_floor_ms": 5,
    }
    data.update(overrides)
    return CanaryConfig.model_validate(data)


def test_canary_advances_when_healthy() -> None:
    clock = Clock()
    state = CanaryState(experiment="e", control="a", config=_canary(), clock=clock)
    assert state.percent == 10
    for _ in range(19):
        state.observe("b", ok=True, latency_ms=10)
    assert state.percent == 10
    state.observe("b", ok=True, latency_ms=10)
    assert state.percent == 50 and state.status == "ramping"
    state.observe("a", ok=True, latency_ms=10)
    clock.now = 61
    state.tick()
    assert state.percent == 100 and state.status == "complete"
    for _ in range(100):
        state.observe("a", ok=True, latency_ms=10)
        state.observe("b", ok=True, latency_ms=11)
    assert state.status == "complete"
    assert [event["event"] for event in state.history] == ["start", "advance", "advance"]


def test_canary_rolls_back_on_errors_after_min_sample() -> None:
    state = CanaryState(experiment="e", control="a", config=_canary(steps=[CanaryStep(percent=10)]))
    for i in range(29):
        state.observe("a", ok=True, latency_ms=10)
        state.observe("b", ok=i % 2 == 0, latency_ms=10)
    assert state.status == "complete"  # below min_samples: no decision yet
    state.observe("a", ok=True, latency_ms=10)
    state.observe("b", ok=False, latency_ms=10)
    assert state.status == "rolled_back" and state.percent == 0
    assert state.rollback_reason is not None and "error rate" in state.rollback_reason
    state.observe("b", ok=True, latency_ms=10)  # ignored after rollback
    assert state.percent == 0


def test_canary_rolls_back_on_latency() -> None:
    state = CanaryState(experiment="e", control="a", config=_canary())
    for _ in range(30):
        state.observe("a", ok=True, latency_ms=10)
    for _ in range(30):
        state.observe("b", ok=True, latency_ms=40)
    assert state.status == "rolled_back"
    assert state.rollback_reason is not None and "p95" in state.rollback_reason


def test_experiments_observe_drives_canary_and_assignment() -> None:
    canary = """    canary:
      arm: b
      min_samples: 20
      steps: [{percent: 50, after_requests: 1000}, {percent: 100}]
"""
    exps = Experiments()
    exps.configure(parse_config(_config((1, 1), canary=canary)))
    users = [f"u{i}" for i in range(4000)]
    share = Counter(_assign_all(exps, users).values())["b"] / len(users)
    assert share == pytest.approx(0.5, abs=0.03)
    for i in range(40):
        for arm, status in (("a", UsageStatus.OK), ("b", UsageStatus.ERROR)):
            exps.observe(
                UsageRecord(request_id=f"{arm}{i}", experiment="exp", arm=arm, status=status, latency_ms=5)
            )
    state = exps.canary("exp")
    assert state is not None and state.status == "rolled_back"
    assert set(_assign_all(exps, users).values()) == {"a"}
    # an unchanged config keeps the state; a changed one starts over
    exps.configure(parse_config(_config((1, 1), canary=canary)))
    assert exps.canary("exp") is state
    exps.configure(parse_config(_config((1, 1), canary=canary.replace("min_samples: 20", "min_samples: 25"))))
    new = exps.canary("exp")
    assert new is not None and new is not state and new.status == "ramping"
