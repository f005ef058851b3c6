"""Experiments: statistics against known values, ROUGE-L, sticky assignment, canary state machine,
the shadow judge (prompt, parsing, budget)."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.config.experiments import CanaryConfig, CanaryStep
from gateway.config.routing import ConfigError, parse_config
from gateway.experiments import stats
from gateway.experiments.agreement import lcs_length, rouge_l_f1, tokens
from gateway.experiments.canary import CanaryState
from gateway.experiments.judge import (
    JudgeParseError,
    ShadowJudge,
    judge_messages,
    parse_scores,
    shadow_position,
    winner,
)
from gateway.experiments.runtime import Experiments
from gateway.experiments.shadow import ShadowPair, ShadowResults, ShadowSide
from gateway.providers.base import Choice, Completion, ModelCall, Usage
from gateway.usage.record import UsageRecord, UsageStatus
from tests.support.waiting import eventually

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
    # The step's 20 requests are there, but min_samples (30 per arm) is not: held, not advanced.
    state.observe("b", ok=True, latency_ms=10)
    assert state.percent == 10 and state.held and state.history[-1]["event"] == "hold"
    for _ in range(30):
        state.observe("a", ok=True, latency_ms=10)
    for _ in range(10):
        state.observe("b", ok=True, latency_ms=10)
    assert state.percent == 50 and state.status == "ramping" and not state.held
    clock.now = 61
    state.tick()
    assert state.percent == 100 and state.status == "complete"
    for _ in range(100):
        state.observe("a", ok=True, latency_ms=10)
        state.observe("b", ok=True, latency_ms=11)
    assert state.status == "complete"
    assert [event["event"] for event in state.history] == ["start", "hold", "advance", "advance"]
    assert all(event["at"].endswith("+00:00") for event in state.history)
    state.reset(reason="new build")
    assert state.percent == 10 and state.status == "ramping" and state.step_requests == 0
    assert state.history[-1]["event"] == "reset" and state.history[-1]["reason"] == "new build"
    assert state.describe()["windows"]["b"]["n"] == 0


def test_canary_promote_and_rollback_by_hand() -> None:
    """The console's buttons: rollback sends the canary to 0% now, promote to the last step."""
    state = CanaryState(experiment="e", control="a", config=_canary())
    state.rollback(reason="looks off")
    assert state.status == "rolled_back" and state.percent == 0 and state.rollback_reason == "looks off"
    state.observe("b", ok=True, latency_ms=10)  # a rolled-back canary takes no more outcomes
    assert state.describe()["windows"]["b"]["n"] == 0
    state.promote(reason="ship it")
    assert state.status == "complete" and state.percent == 100 and state.rollback_reason is None
    assert [(e["event"], e.get("reason")) for e in state.history] == [
        ("start", None),
        ("rollback", "looks off"),
        ("promote", "ship it"),
    ]


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


def test_lcs_bit_parallel_matches_the_dynamic_programme() -> None:
    def reference(a: list[str], b: list[str]) -> int:
        previous = [0] * (len(b) + 1)
        for x in a:
            current = [0] * (len(b) + 1)
            for j, y in enumerate(b, start=1):
                current[j] = previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1])
            previous = current
        return previous[-1]

    rng = random.Random(5)
    for _ in range(500):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 40))]
        assert lcs_length(a, b) == reference(a, b), (a, b)
    long_a = [str(rng.randint(0, 300)) for _ in range(1024)]
    long_b = [str(rng.randint(0, 300)) for _ in range(1024)]
    started = time.perf_counter()
    assert lcs_length(long_a, long_b) == reference(long_a[:1024], long_b[:1024])
    assert time.perf_counter() - started < 5  # the reference DP dominates; the bit-parallel part is ~1 ms


def test_judge_prompt_holds_request_and_both_answers_clipped() -> None:
    request = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    messages = judge_messages(request=request, answer_a="Paris." * 100, answer_b="Lyon", max_chars=120)
    assert messages[0]["role"] == "system" and "1 (useless" in messages[0]["content"]
    body = messages[1]["content"]
    assert "What is the capital of France?" in body and "first question" not in body
    assert "Answer A:\n<<<\n" + "Paris." * 20 + " […]" in body and "Answer B:\n<<<\nLyon\n>>>" in body


def test_judge_parse_scores() -> None:
    assert parse_scores('{"a": 7, "b": 3}') == (7, 3)
    assert parse_scores('Sure! ```json\n{"A": 10, "B": "2"}\n```') == (10, 2)
    assert parse_scores('{"reason": "x"} then {"a": 5.0, "b": 6}') == (5, 6)
    assert parse_scores("Answer A: 8\nAnswer B: 9") == (8, 9)
    for bad in (
        "",
        "no idea",
        '{"a": 0, "b": 5}',
        '{"a": 11, "b": 5}',
        '{"a": 7.5, "b": 5}',
        '{"a": true, "b": 1}',
        'judge says: {"a": <1-10>, "b": <1-10>}',
    ):
        with pytest.raises(JudgeParseError):
            parse_scores(bad)
    assert winner(3, 8) == "shadow" and winner(8, 3) == "primary" and winner(5, 5) == "tie"
    positions = Counter(shadow_position(f"pair-{i}") for i in range(1000))
    assert 400 < positions["a"] < 600 and shadow_position("pair-1") == shadow_position("pair-1")


class _FakeProvider:
    kind = "fake"

    def __init__(self, reply: str, delay_s: float = 0.0) -> None:
        self.reply, self.delay_s, self.calls = reply, delay_s, 0

    async def complete(self, call: ModelCall) -> Completion:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return Completion(
            model=call.model,
            choices=[Choice(index=0, content=self.reply, finish_reason="stop")],
            usage=Usage(prompt_tokens=100, completion_tokens=10),
        )


def _judge_setup(provider: _FakeProvider, **judge: Any) -> tuple[ShadowJudge, list[dict[str, Any]]]:
    config = parse_config(
        "models:\n  fast: {provider: mock}\n  cand: {provider: mock}\n"
        "  judge: {provider: mock, price_input_per_mtok: 1000, price_output_per_mtok: 1000}\n"
        f"aliases:\n  chat: {{target: fast, shadow: [cand], shadow_judge: {json.dumps(judge)}}}\n"
    )
    targets = {
        "judge": SimpleNamespace(
            name="judge", upstream_model="judge", provider=provider, config=config.models["judge"]
        )
    }
    snapshot = SimpleNamespace(config=config, targets=targets, model_label=lambda name: name or "other")
    rows: list[dict[str, Any]] = []
    sink = SimpleNamespace(add_judgement=rows.append)
    return ShadowJudge(lambda: snapshot, writer=sink), rows  # type: ignore[arg-type,return-value]


def _pair(results: ShadowResults, *, shadow_error: str | None = None) -> ShadowPair:
    pair = results.new_pair(request_id="r", alias="chat", shadow_model="cand", streamed=False)
    pair.prompt = [{"role": "user", "content": "hi"}]
    pair.complete_primary(ShadowSide(model="fast", text="hello there"))
    pair.complete_shadow(ShadowSide(model="cand", text="hello", error=shadow_error))
    return pair


async def test_judge_budget_timeouts_and_parse_errors_are_counted_not_raised() -> None:
    provider = _FakeProvider('{"a": 9, "b": 2}')
    judge, rows = _judge_setup(provider, model="judge", sample_rate=1.0, max_concurrent=2, spend_cap_usd=0.25)
    results = ShadowResults()
    results.judge = judge
    for _ in range(5):  # completes both sides: judge.consider is called by the pair
        _pair(results)
    _pair(results, shadow_error="upstream_unavailable")  # failed pairs are not judged
    assert judge.pending == 2  # max_concurrent: the other three were dropped (busy)
    await judge.aclose()
    assert len(rows) == 2 and all(r["error"] is None for r in rows)
    for row in rows:  # scores mapped back from the shown position
        assert (row["primary_score"], row["shadow_score"]) == (
            (2, 9) if row["shadow_position"] == "a" else (9, 2)
        )
    assert judge.spent["chat"] == pytest.approx(2 * 0.11)

    judge2, rows2 = _judge_setup(
        provider, model="judge", sample_rate=1.0, max_concurrent=8, spend_cap_usd=0.1
    )
    results.judge = judge2
    _pair(results)
    await asyncio.sleep(0.01)
    _pair(results)  # over the cap after the first call (0.11 USD)
    await judge2.aclose()
    assert len(rows2) == 1

    slow, rows3 = _judge_setup(
        _FakeProvider("{}", delay_s=1.0), model="judge", sample_rate=1.0, deadline_s=0.05
    )
    garbled, rows4 = _judge_setup(_FakeProvider("I prefer the first one"), model="judge", sample_rate=1.0)
    for j, rows in ((slow, rows3), (garbled, rows4)):
        results.judge = j
        _pair(results)
        await eventually(lambda rows=rows: len(rows) == 1, "the judgement is written")
        await j.aclose()
    assert [r["error"] for r in rows3] == ["timeout"] and [r["error"] for r in rows4] == ["parse_error"]
    assert rows3[0]["winner"] is None and rows4[0]["primary_score"] is None

    none, rows5 = _judge_setup(provider, model="judge", sample_rate=0.0)
    results.judge = none
    _pair(results)
    await none.aclose()
    assert rows5 == []
