"""A request's books: one usage record, its metrics, the quota settlement, the cache write, the
conversation store and the shadow dispatch — closed exactly once, however the request ends.

``RequestBooks`` is the flow's ``BooksPort``: the ``settle`` node calls :meth:`RequestBooks.settle`
with the final state; the SSE relay calls :meth:`RequestBooks.close` itself before its last frame.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.agent.shadow import ShadowDispatcher
from gateway.agent.state import ChatInput, PipelineState, RequestTrace, ToolAuditSink
from gateway.cache import QuotaLimiter, QuotaTicket
from gateway.cache.service import PipelineCache
from gateway.errors import GatewayError
from gateway.experiments.runtime import Experiments
from gateway.experiments.shadow import ShadowSide
from gateway.observability import access, metrics
from gateway.observability.metrics import OTHER
from gateway.providers.base import Usage
from gateway.routing.router import RouteDecision
from gateway.runtime import RuntimeSnapshot
from gateway.security.principal import Principal
from gateway.services import conversations
from gateway.usage.record import UsageRecord, UsageStatus


class ConversationSink(Protocol):
    """Stores the exchange of a successful request (the conversation store)."""

    def __call__(self, *, answer: str | None, model: str | None) -> Awaitable[None]: ...


class UsageSink(Protocol):
    def record(self, record: UsageRecord) -> None: ...


@dataclass(slots=True)
class Ledger:
    """The process-wide services the books write to."""

    experiments: Experiments
    usage: UsageSink | None = None
    quotas: QuotaLimiter | None = None
    response_cache: PipelineCache | None = None
    shadow: ShadowDispatcher | None = None
    tool_audit: ToolAuditSink | None = None


def served_by(trace: RequestTrace) -> str | None:
    """The target of the last successful attempt."""
    return next((attempt.target for attempt in reversed(trace.attempts) if attempt.outcome == "ok"), None)


class RequestBooks:
    def __init__(
        self,
        ledger: Ledger,
        *,
        chat: ChatInput,
        principal: Principal,
        record: UsageRecord,
        trace: RequestTrace,
        snapshot: RuntimeSnapshot,
        conversation: ConversationSink | None = None,
    ) -> None:
        self.ledger = ledger
        self.chat = chat
        self.principal = principal
        self.record = record
        self.trace = trace
        self.snapshot = snapshot
        self.conversation = conversation
        self.ticket: QuotaTicket | None = None
        """Set by the admission once the reservation has passed."""
        self.cache_write = False
        self.cache_served: str | None = None
        """A cache hit: the configured model whose stored answer it is (labels, provider, header)."""
        self.route: RouteDecision | None = None
        self.finished = False

    # -- the settle step ------------------------------------------------------------------------

    async def settle(self, state: PipelineState) -> None:
        self.describe(state.get("route"))
        error = state.get("error")
        if error is not None:
            usage = state.get("usage")  # tokens spent upstream before the failure (output guard)
            served = served_by(self.trace) if usage is not None else None
            self.label_error(error, served)
            await self.close(error=error, usage=usage, served=served)
            return
        reply = state.get("reply")
        cached = state.get("cached")
        if cached is not None:
            self.record.cache_hit = True
            body_usage = cached.get("usage") or {}
            usage = Usage(
                prompt_tokens=int(body_usage.get("prompt_tokens", 0)),
                completion_tokens=int(body_usage.get("completion_tokens", 0)),
            )
            served = self.cache_served or str(cached.get("model") or "")
            await self.close(usage=usage, served=served, cost_free=True)
            if reply is not None and reply.body is not None:
                await self.store_conversation(conversations.answer_text(reply.body), reply.model)
            return
        body = reply.body if reply is not None else None
        if body is None:
            raise RuntimeError("the flow produced neither an answer nor an error")
        served = served_by(self.trace)
        if self.trace.shadow_pairs:
            self.trace.answer = answer_text(body)
        if served is not None:
            await self.store(body, served)
        await self.close(usage=state.get("usage"), served=served)
        await self.store_conversation(conversations.answer_text(body), served)

    def describe(self, route: RouteDecision | None) -> None:
        if route is None:
            return
        self.route = route
        record = self.record
        record.intent = route.intent
        record.routing_tier = route.tier
        record.experiment = route.experiment
        record.arm = route.arm
        record.route = route.label

    def label_error(self, exc: GatewayError, served: str | None) -> None:
        """An error answer names its route (experiment arm included) and the model it was about, so
        a failure can be tied to its arm without a database join (issue #26)."""
        route = self.route
        if route is not None:
            exc.headers.setdefault("x-prism-route", route.label)
        model = served or (route.targets[0] if route is not None and route.targets else None)
        label = self.snapshot.model_label(model or self.chat.model)
        if label != OTHER:  # only configured names: the requested one is client text (any Unicode)
            exc.headers.setdefault("x-prism-model", label)

    async def store(self, body: dict[str, Any], served: str) -> None:
        """Write a fresh answer to the response cache (behind the response)."""
        cache, key = self.ledger.response_cache, self.trace.cache_key
        target = self.snapshot.targets.get(served)
        if not self.cache_write or cache is None or target is None or key is None:
            return
        if target.config.cache_ttl_s <= 0:
            return
        await cache.store(
            key=key,
            response=body,
            model_served=served,
            provider=target.provider.kind,
            ttl_s=target.config.cache_ttl_s,
        )

    async def store_conversation(self, answer: str | None, model: str | None) -> None:
        if self.conversation is not None:
            await self.conversation(answer=answer, model=model)

    # -- the books ------------------------------------------------------------------------------

    async def close(
        self,
        *,
        usage: Usage | None = None,
        served: str | None = None,
        error: GatewayError | None = None,
        status: UsageStatus | None = None,
        http_status: int | None = None,
        cost_free: bool = False,
    ) -> None:
        """Close the request's books exactly once: usage record, metrics, quota settlement."""
        if self.finished:
            return
        self.finished = True
        record, trace, snapshot, ledger = self.record, self.trace, self.snapshot, self.ledger
        elapsed = time.perf_counter() - trace.started_at
        record.latency_ms = round(elapsed * 1000, 3)
        record.attempts = len(trace.attempts)
        record.fallback_used = trace.fallback_from is not None
        record.model_served = served
        record.guard_flags = trace.guard_header
        target = snapshot.targets.get(served) if served else None
        if target is not None:
            record.provider = target.provider.kind
        if error is not None:
            record.status = UsageStatus.REJECTED if not trace.attempts else UsageStatus.ERROR
            record.http_status = error.status_code
            record.error_type = error.code
            metrics.ERRORS.labels(type=error.error_type).inc()
        else:
            record.status = status or UsageStatus.OK
            record.http_status = http_status or 200
        loop = trace.tools
        if loop is not None:  # every model call of the tool loop, summed (the last one is ``usage``)
            record.tool_rounds, record.tool_calls = loop.rounds, loop.calls
            if loop.usage.total_tokens or loop.cost_usd:
                usage = _plus(usage or Usage(), loop.usage)
            if loop.audit and ledger.tool_audit is not None:
                ledger.tool_audit.record(loop.audit)
        if usage is not None:
            self._count(usage, target=None if cost_free else target, served=served)
        if loop is not None and loop.cost_usd:
            record.cost_usd = _last_call_cost(target, usage, loop.usage) + loop.cost_usd
        spent = elapsed if not record.streamed else (record.ttft_ms or 0) / 1000
        metrics.GATEWAY_OVERHEAD.labels(route=access.current_route(metrics.CHAT_ROUTE)).observe(
            max(spent - trace.provider_time_s, 0.0)
        )
        if ledger.usage is not None:
            ledger.usage.record(record)
        ledger.experiments.observe(record)
        access.note_usage(record, key_prefix=self.principal.api_key_prefix, messages=self.chat.messages)
        try:
            if self.ticket is not None and ledger.quotas is not None:
                await ledger.quotas.settle_soon(
                    self.ticket,
                    actual_tokens=record.prompt_tokens + record.completion_tokens,
                    actual_cost_usd=record.cost_usd,
                )
        finally:
            if trace.shadow_pairs and ledger.shadow is not None:
                # Last: the shadow calls start only once the primary is done (issue #5).
                ledger.shadow.launch(trace.shadow_pairs, _primary_side(trace, record))

    def _count(self, usage: Usage, *, target: Any, served: str | None) -> None:
        record = self.record
        record.prompt_tokens = usage.prompt_tokens
        record.completion_tokens = usage.completion_tokens
        record.reasoning_tokens = usage.reasoning_tokens
        record.cached_tokens = usage.cached_tokens
        if target is not None:
            record.cost_usd = target.config.cost_of(usage)
        model = self.snapshot.model_label(served)
        provider = record.provider or "other"
        tier = record.tier or "other"
        for direction, count in (("input", usage.prompt_tokens), ("output", usage.completion_tokens)):
            metrics.TOKENS.labels(model=model, provider=provider, tier=tier, direction=direction).inc(count)
            metrics.TOKEN_USAGE.labels(model=model, provider=provider, token_type=direction).observe(count)
        if record.cost_usd:
            metrics.COST.labels(model=model, provider=provider, tier=tier).inc(record.cost_usd)


def _plus(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
    )


def _last_call_cost(target: Any, total: Usage | None, loop: Usage) -> float:
    """The cost of the loop's last model call (the total minus the loop's earlier calls)."""
    if target is None or total is None:
        return 0.0
    return float(
        target.config.cost(
            total.prompt_tokens - loop.prompt_tokens,
            total.completion_tokens - loop.completion_tokens,
            cached_tokens=total.cached_tokens - loop.cached_tokens,
            cache_write_tokens=total.cache_write_tokens - loop.cache_write_tokens,
        )
    )


def answer_text(body: Mapping[str, Any]) -> str:
    choices = body.get("choices") or []
    message = choices[0].get("message") or {} if choices else {}
    return str(message.get("content") or "")


def _primary_side(trace: RequestTrace, record: UsageRecord) -> ShadowSide:
    """The primary's side of this request's shadow pairs (issue #5)."""
    return ShadowSide(
        model=record.model_served,
        latency_ms=record.latency_ms,
        ttft_ms=record.ttft_ms,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cost_usd=record.cost_usd,
        error=record.error_type if record.status is not UsageStatus.OK else None,
        text=trace.answer,
    )
