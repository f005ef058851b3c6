"""Smart routing policy: per-key/user tier cap, conversation stickiness (bounded, TTL, fail-open), LLM
escalation (used / timeout / error / unparseable) and the route label that explains them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.cache.store import MemoryResponseStore
from gateway.config.routing import EscalationConfig, parse_config
from gateway.errors import ContextTooLong
from gateway.intent import IntentResult
from gateway.observability import metrics
from gateway.providers.base import Choice, Completion, Delta, ModelCall, Provider, Usage
from gateway.providers.registry import Target, build_targets
from gateway.routing.circuit import CircuitBreakers
from gateway.routing.router import Router
from gateway.routing.smart import ConversationTiers, SmartRouting, escalate, parse_label
from gateway.security.principal import Principal
from tests.support.waiting import eventually

CONFIG = """
models:
  small: {provider: mock, tier: cheap, price_input_per_mtok: 0.1, context_window: 1000}
  mid: {provider: mock, tier: mid, price_input_per_mtok: 1.0, context_window: 4000}
  big: {provider: mock, tier: strong, price_input_per_mtok: 5.0, context_window: 100000}
aliases:
  auto: {smart: true}
fallbacks:
  small: [big]
routing:
  tiers: [cheap, mid, strong]
  intent_tiers: {small_talk: cheap, general: mid, reasoning: strong}
"""
LABELS = ("small_talk", "general", "reasoning")
EASY = IntentResult(label="small_talk", confidence=0.95, complexity=0.1, language="en")
HARD = IntentResult(label="reasoning", confidence=0.95, complexity=0.9, language="en")
UNSURE = IntentResult(label="small_talk", confidence=0.3, complexity=0.1, language="en")


@pytest.fixture()
def router() -> Router:
    config = parse_config(CONFIG)
    return Router(
        config=config,
        targets=build_targets(config, clients=None, env={}),
        circuits=CircuitBreakers(config.circuit_breaker),
    )


def _route(router: Router, intent: IntentResult, principal: Principal, **kw: Any) -> Any:
    return router.route(
        requested="auto",
        principal=principal,
        intent=intent,
        prompt_tokens=kw.pop("prompt_tokens", 10),
        max_tokens=None,
        sticky={},
        request_id="r",
        **kw,
    )


# ------------------------------------------------------------------------------------------ cap
def test_key_cap_limits_tier_and_fallbacks(router: Router) -> None:
    free = _route(router, HARD, Principal(user_id="u"))
    assert free.tier == "strong" and free.targets[0] == "big" and free.capped_from is None
    capped = _route(router, HARD, Principal(user_id="u", max_route_tier="cheap"))
    assert capped.tier == "cheap" and capped.capped_from == "strong"
    assert capped.targets == ("small",)  # `small: [big]` fallback dropped: above the cap
    assert "tier=cheap;capped_from=strong;model=small" in capped.label
    # a cap above the chosen tier changes nothing
    assert _route(router, EASY, Principal(user_id="u", max_route_tier="mid")).capped_from is None


def test_stricter_of_key_and_user_cap_and_unknown_caps_fail_closed(router: Router) -> None:
    both = Principal(user_id="u", max_route_tier="mid", user_max_route_tier="cheap")
    assert router.tier_cap(both) == "cheap"
    assert router.tier_cap(Principal(user_id="u", user_max_route_tier="mid")) == "mid"
    assert router.tier_cap(Principal(user_id="u", max_route_tier="platinum")) == "cheap"
    assert router.tier_cap(Principal(user_id="u")) is None
    assert _route(router, HARD, both).targets[0] == "small"


def test_cap_with_a_prompt_too_long_for_allowed_models(router: Router) -> None:
    with pytest.raises(ContextTooLong, match="max_route_tier"):
        _route(router, HARD, Principal(user_id="u", max_route_tier="mid"), prompt_tokens=50_000)


def test_explicit_models_are_not_capped(router: Router) -> None:
    decision = router.route(
        requested="big", principal=Principal(user_id="u", max_route_tier="cheap"), intent=HARD,
        prompt_tokens=10, max_tokens=None, sticky={}, request_id="r",
    )
    assert decision.targets[0] == "big"


# ------------------------------------------------------------------------------------ stickiness
def test_min_tier_raises_but_cap_wins(router: Router) -> None:
    user = Principal(user_id="u")
    raised = _route(router, EASY, user, min_tier="strong")
    assert raised.tier == "strong" and raised.sticky_from == "cheap" and raised.needed_tier == "strong"
    assert "sticky_from=cheap" in raised.label
    assert _route(router, HARD, user, min_tier="cheap").sticky_from is None  # a floor never lowers
    assert _route(router, EASY, user, min_tier="bogus").tier == "cheap"
    capped = _route(router, EASY, Principal(user_id="u", max_route_tier="mid"), min_tier="strong")
    assert capped.tier == "mid" and capped.capped_from == "strong" and capped.needed_tier == "strong"


async def test_conversation_tiers_remember_with_ttl_and_tenant_scope() -> None:
    tiers = ConversationTiers(MemoryResponseStore(max_entries=2, max_bytes=1024))
    assert await tiers.floor(tenant="t", conversation="c", timeout_s=0.1) is None
    tiers.remember(tenant="t", conversation="c", tier="strong", ttl_s=0.2)
    await tiers.drain()
    assert await tiers.floor(tenant="t", conversation="c", timeout_s=0.1) == "strong"
    assert await tiers.floor(tenant="other", conversation="c", timeout_s=0.1) is None


    async def expired() -> bool:
        return await tiers.floor(tenant="t", conversation="c", timeout_s=0.1) is None

    await eventually(expired, "the remembered tier expires (ttl 0.2 s)")
    for i in range(5):  # bounded: the store keeps at most 2 conversations
        tiers.remember(tenant="t", conversation=f"c{i}", tier="strong", ttl_s=60)
    await tiers.drain()
    found = [await tiers.floor(tenant="t", conversation=f"c{i}", timeout_s=0.1) for i in range(5)]
    assert found == [None, None, None, "strong", "strong"]


class _SlowStore(MemoryResponseStore):
    def __init__(self, delay_s: float, fail: bool = False) -> None:
        super().__init__()
        self.delay_s, self.fail = delay_s, fail

    async def get(self, key: str) -> bytes | None:
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("redis down")
        return b"strong"


async def test_conversation_tiers_fail_open_fast() -> None:
    slow = ConversationTiers(_SlowStore(delay_s=1.0))
    started = time.perf_counter()
    assert await slow.floor(tenant="t", conversation="c", timeout_s=0.02) is None
    assert time.perf_counter() - started < 0.5
    broken = ConversationTiers(_SlowStore(delay_s=0, fail=True))
    assert await broken.floor(tenant="t", conversation="c", timeout_s=0.02) is None


def test_smart_routing_delegates_classification() -> None:
    class Fixed:
        def classify(self, text: str, *, context: tuple[str, ...] = ()) -> IntentResult:
            return EASY

    assert SmartRouting(Fixed()).classify("hi") is EASY


# ------------------------------------------------------------------------------------ escalation
def test_parse_label() -> None:
    assert parse_label("reasoning complex", LABELS) == ("reasoning", True)
    assert parse_label("Label: small_talk (simple)", LABELS) == ("small_talk", False)
    assert parse_label("general", LABELS) == ("general", None)
    assert parse_label("general or reasoning, simple", LABELS) is None
    assert parse_label("I cannot help with that", LABELS) is None
    assert parse_label("small_talky", LABELS) is None


class _Labeller(Provider):
    kind = "fake"

    def __init__(self, *, answer: str | None = None, delay_s: float = 0.0, error: bool = False) -> None:
        super().__init__(name="labeller", is_local=True)
        self.answer, self.delay_s, self.error = answer, delay_s, error
        self.calls: list[ModelCall] = []

    async def complete(self, call: ModelCall) -> Completion:
        self.calls.append(call)
        await asyncio.sleep(self.delay_s)
        if self.error:
            raise RuntimeError("upstream 500")
        return Completion(model="labeller", choices=[Choice(index=0, content=self.answer)], usage=Usage())

    def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        raise NotImplementedError("the labeller is never streamed")


def _target(provider: Provider) -> Target:
    config = parse_config(CONFIG)
    return Target(name="small", config=config.models["small"], provider=provider)


def _count(outcome: str) -> float:
    return metrics.INTENT_ESCALATIONS.labels(outcome=outcome)._value.get()


async def test_escalation_used_changes_label_and_raises_complexity() -> None:
    provider = _Labeller(answer="reasoning complex")
    before = _count("used")
    result = await escalate(
        UNSURE, text="x" * 5000, target=_target(provider), config=EscalationConfig(trust=0.8), labels=LABELS
    )
    assert result == IntentResult(
        label="reasoning", confidence=0.8, complexity=1.0, language="en", escalation="used"
    )
    assert _count("used") == before + 1
    sent = provider.calls[0]
    assert sent.params["max_tokens"] == 16 and len(sent.messages[1]["content"]) == 2000
    assert "small_talk, general, reasoning" in sent.messages[0]["content"]
    simple = await escalate(
        HARD, text="q", target=_target(_Labeller(answer="general simple")), config=EscalationConfig(),
        labels=LABELS,
    )
    assert simple.label == "general" and simple.complexity == HARD.complexity  # never lowered


@pytest.mark.parametrize(
    ("provider", "outcome"),
    [
        (_Labeller(answer="reasoning", delay_s=1.0), "timeout"),
        (_Labeller(error=True), "error"),
        (_Labeller(answer="no idea"), "error"),
        (None, "error"),
    ],
)
async def test_escalation_falls_back_to_the_fast_label(provider: Provider | None, outcome: str) -> None:
    before = _count(outcome)
    started = time.perf_counter()
    result = await escalate(
        UNSURE,
        text="q",
        target=_target(provider) if provider is not None else None,
        config=EscalationConfig(timeout_ms=50),
        labels=LABELS,
    )
    assert time.perf_counter() - started < 0.5
    assert result.label == UNSURE.label and result.confidence == UNSURE.confidence
    assert result.escalation == outcome and _count(outcome) == before + 1


def test_escalation_config_names_a_model() -> None:
    with pytest.raises(Exception, match=r"routing\.escalation\.model"):
        parse_config(CONFIG + "  escalation: {enabled: true, model: nope}\n")
    config = parse_config(CONFIG + "  escalation: {enabled: true, model: small}\n")
    assert config.routing.escalation.enabled and config.routing.sticky_upgrade_s == 600
