"""The stateful and remote parts of smart routing (``model: "auto"``), used by the intent and router nodes.

* ``ConversationTiers``: upward stickiness. Once a conversation needed a tier above the cheapest, later
  ``auto`` requests of that conversation get at least that tier for ``routing.sticky_upgrade_s`` seconds
  (counted from the last request that needed it by itself), so an agent is not bounced between models.
  Kept in the cache backend (Redis, else a bounded in-process LRU) with a TTL; reads are bounded by
  ``routing.sticky_timeout_ms`` and fail open (no stickiness); writes happen off the request path.
* ``escalate``: when the fast classifier is unsure, ask a configured small model for the label within a
  strict time budget; on timeout, error or an unparseable answer, the fast label stands.
* ``SmartRouting``: the classifier the graph receives, carrying the conversation tier memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import time
from collections.abc import Sequence
from typing import Final, Literal, Protocol

import structlog

from gateway.cache.backends import CacheBackends
from gateway.cache.store import MemoryResponseStore, RedisResponseStore, ResponseStore
from gateway.config.routing import EscalationConfig
from gateway.intent import IntentResult
from gateway.observability import access, metrics, tracing
from gateway.providers.base import ModelCall, Timeouts
from gateway.providers.registry import Target

log = structlog.get_logger(__name__)

EscalationOutcome = Literal["used", "timeout", "error"]

_WRITE_TIMEOUT_S: Final = 0.25
_MAX_PENDING_WRITES: Final = 256


class _Classifier(Protocol):
    def classify(self, text: str, *, context: tuple[str, ...] = ()) -> IntentResult: ...


class ConversationTiers:
    """conversation → the highest tier it needed, with a TTL; keys are hashes of (tenant, conversation)."""

    def __init__(self, store: ResponseStore) -> None:
        self._store = store
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def for_backends(cls, backends: CacheBackends, *, prefix: str) -> ConversationTiers:
        if backends.redis is not None:
            return cls(RedisResponseStore(backends.redis, prefix=f"{prefix}:route"))
        return cls(MemoryResponseStore(max_entries=100_000, max_bytes=16 * 1024 * 1024))

    @staticmethod
    def _key(tenant: str, conversation: str) -> str:
        return hashlib.blake2b(f"{tenant}\x1f{conversation}".encode(), digest_size=16).hexdigest()

    async def floor(self, *, tenant: str, conversation: str, timeout_s: float) -> str | None:
        """The tier this conversation must not go below, or None (unknown, expired, or the store is slow)."""
        try:
            async with asyncio.timeout(timeout_s):
                raw = await self._store.get(self._key(tenant, conversation))
        except TimeoutError:
            metrics.ROUTE_STICKY.labels(result="timeout").inc()
            return None
        except Exception as exc:  # fail open: routing without stickiness beats failing the request
            metrics.ROUTE_STICKY.labels(result="error").inc()
            log.warning("route_sticky_read_failed", error=type(exc).__name__)
            return None
        metrics.ROUTE_STICKY.labels(result="miss" if raw is None else "hit").inc()
        return None if raw is None else raw.decode()

    def remember(self, *, tenant: str, conversation: str, tier: str, ttl_s: float) -> None:
        """Record (or refresh) the conversation's tier without waiting; dropped when too many writes pend."""
        if ttl_s <= 0 or len(self._pending) >= _MAX_PENDING_WRITES:
            return
        task = asyncio.create_task(self._write(self._key(tenant, conversation), tier, ttl_s))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, key: str, tier: str, ttl_s: float) -> None:
        try:
            async with asyncio.timeout(_WRITE_TIMEOUT_S):
                await self._store.set(key, tier.encode(), ttl_s)
        except Exception as exc:
            log.warning("route_sticky_write_failed", error=type(exc).__name__)

    async def drain(self) -> None:
        """Wait for pending writes (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


class SmartRouting:
    """The intent classifier handed to the graph, with the conversation tier memory of this process."""

    def __init__(self, classifier: _Classifier, *, tiers: ConversationTiers | None = None) -> None:
        self.classifier = classifier
        self.tiers = tiers

    def classify(self, text: str, *, context: tuple[str, ...] = ()) -> IntentResult:
        return self.classifier.classify(text, context=context)


# ---------------------------------------------------------------------------------------- escalation
_SYSTEM = (
    "You label requests for a model router. Labels: {labels}. Reply with exactly two words: the label, "
    "then `simple` or `complex` (complex: needs multi-step reasoning, maths, non-trivial code or careful "
    "analysis). No other text."
)
_COMPLEX = re.compile(r"\b(complex|hard|difficult)\b")
_SIMPLE = re.compile(r"\b(simple|easy)\b")


def parse_label(answer: str, labels: Sequence[str]) -> tuple[str, bool | None] | None:
    """``(label, complex?)`` from the labeller's answer; None unless exactly one known label is named.

    ``complex?`` is None when the answer says neither ``simple`` nor ``complex``.
    """
    text = answer.lower()
    found = {
        label
        for label in labels
        if re.search(rf"(?<![a-z0-9_]){re.escape(label.lower())}(?![a-z0-9_])", text) is not None
    }
    if len(found) != 1:
        return None
    complex_ = _COMPLEX.search(text) is not None
    simple = _SIMPLE.search(text) is not None
    return found.pop(), (complex_ if complex_ != simple else None)


async def escalate(
    result: IntentResult,
    *,
    text: str,
    target: Target | None,
    config: EscalationConfig,
    labels: Sequence[str],
) -> IntentResult:
    """The LLM's label for ``text`` (confidence ``config.trust``), or ``result`` marked with why not.

    The LLM can change the label and raise the complexity (``complex``); it never lowers the fast
    classifier's complexity, since a hard prompt sent cheap is the costly error.
    """
    started = time.perf_counter()
    outcome: EscalationOutcome = "error"
    reason = "model_unavailable"
    escalated = result
    span = tracing.tracer().start_span("intent.escalation") if tracing.enabled() else None
    try:
        if target is not None:
            call = ModelCall(
                model=target.upstream_model,
                messages=[
                    {"role": "system", "content": _SYSTEM.format(labels=", ".join(labels))},
                    {"role": "user", "content": text[: config.max_prompt_chars]},
                ],
                params={"max_tokens": 16, "temperature": 0},
                timeouts=Timeouts(
                    connect_s=config.timeout_ms / 1000,
                    first_token_s=config.timeout_ms / 1000,
                    total_s=config.timeout_ms / 1000,
                    idle_s=config.timeout_ms / 1000,
                ),
                include_usage=False,
            )
            try:
                async with asyncio.timeout(config.timeout_ms / 1000):
                    completion = await target.provider.complete(call)
            except TimeoutError:
                outcome, reason = "timeout", "timeout"
            except Exception as exc:  # any provider failure: the fast label stands
                reason = type(exc).__name__
            else:
                answer = completion.choices[0].content if completion.choices else None
                parsed = parse_label(answer or "", labels)
                if parsed is None:
                    reason = "unparseable"
                else:
                    label, complex_ = parsed
                    outcome, reason = "used", "ok"
                    escalated = IntentResult(
                        label=label,
                        confidence=config.trust,
                        complexity=1.0 if complex_ else result.complexity,
                        language=result.language,
                        escalation="used",
                    )
    finally:
        duration = time.perf_counter() - started
        metrics.INTENT_ESCALATIONS.labels(outcome=outcome).inc()
        metrics.INTENT_ESCALATION_DURATION.observe(duration)
        fields = access.current()
        if fields is not None:
            fields["intent_escalation"] = outcome
            fields["intent_escalation_ms"] = round(duration * 1000, 1)
        if span is not None:
            span.set_attributes(
                {
                    "prism.escalation.outcome": outcome,
                    "prism.escalation.reason": reason,
                    "prism.escalation.model": target.name if target is not None else "",
                    "prism.intent.fast_label": result.label,
                    "prism.intent.label": escalated.label,
                }
            )
            span.end()
    if outcome != "used":
        log.info("intent_escalation_fallback", outcome=outcome, reason=reason, label=result.label)
        return dataclasses.replace(result, escalation=outcome)
    return escalated
