"""The chat completion use case: run the graph, then answer, stream and account.

The graph decides (route, guards, attempts) and, for streams, returns a handle
whose first delta has already arrived; this module frames the answer (JSON or
SSE), relays the rest of the stream, and produces exactly one usage record per
request however it ends: success, error, client gone, upstream cut.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
import structlog

from gateway.agent.executor import GraphRunner
from gateway.agent.guard import GuardService
from gateway.agent.shadow import ShadowDispatcher
from gateway.agent.state import (
    ChatInput,
    IntentService,
    PipelineContext,
    PipelineState,
    RequestTrace,
    StreamHandle,
)
from gateway.cache import CachedEntry, QuotaLimiter, QuotaTicket, replay_chunks
from gateway.cache.response import Flight
from gateway.cache.service import PipelineCache
from gateway.errors import GatewayError, ProviderError, ProviderTimeout
from gateway.experiments.shadow import ShadowSide
from gateway.observability import access, metrics
from gateway.observability.metrics import OTHER
from gateway.providers.base import Delta, Usage, aclose_quietly
from gateway.providers.tokens import count_messages, count_text, message_text
from gateway.routing.router import RouteDecision
from gateway.runtime import ConfigHolder, RuntimeSnapshot
from gateway.schemas.openai import (
    GATEWAY_FIELDS,
    SAMPLING_FIELDS,
    ChatCompletionRequest,
    chat_completion,
    chunk,
    completion_id,
)
from gateway.security.principal import Principal
from gateway.services.drain import DRAIN
from gateway.usage.record import UsageRecord, UsageStatus

log = structlog.get_logger("prism.completion")


class UsageSink(Protocol):
    def record(self, record: UsageRecord) -> None: ...


@dataclass(slots=True)
class CompletionResult:
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None
    model: str | None = None


@dataclass(slots=True)
class CompletionServices:
    holder: ConfigHolder
    graph: GraphRunner
    guard: GuardService
    usage: UsageSink | None = None
    shadow: ShadowDispatcher | None = None
    classifier: IntentService | None = None
    response_cache: PipelineCache | None = None
    quotas: QuotaLimiter | None = None
    sleep: Callable[[float], Any] = asyncio.sleep
    extra_headers: dict[str, str] = field(default_factory=dict)


def chat_input(request: ChatCompletionRequest, raw: Mapping[str, Any]) -> ChatInput:
    """The validated request as dicts; unknown fields ride along in ``params['extra']``."""
    messages = [dict(message) for message in raw["messages"]]
    params = {key: raw[key] for key in SAMPLING_FIELDS if raw.get(key) is not None}
    extra = {
        key: value
        for key, value in raw.items()
        if key not in GATEWAY_FIELDS and key not in SAMPLING_FIELDS and value is not None
    }
    if extra:
        params["extra"] = extra
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return ChatInput(
        model=request.model,
        messages=messages,
        params=params,
        stream=request.stream,
        include_usage=include_usage,
        metadata=dict(request.metadata or {}),
        prompt_tokens=count_messages(messages),
    )


def sse(data: Mapping[str, Any] | bytes) -> bytes:
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    return b"data: " + payload + b"\n\n"


@dataclass(slots=True)
class CachePolicy:
    """What the client asked of the cache: ``Cache-Control: no-cache`` (read), ``no-store`` (write),
    or an explicit opt-in for non-deterministic requests."""

    read: bool = True
    write: bool = True
    opt_in: bool = False


@dataclass(slots=True)
class _Call:
    """One request's bookkeeping, carried from admission to the usage record."""

    chat: ChatInput
    principal: Principal
    record: UsageRecord
    trace: RequestTrace
    snapshot: RuntimeSnapshot
    ticket: QuotaTicket | None = None
    cache_key: str | None = None
    cache_write: bool = False
    route: RouteDecision | None = None
    flight: Flight | None = None
    """The cache's single flight, entered by ``_admit`` and left when the request returns."""
    finished: bool = False
    usage: Usage | None = None
    """Tokens already spent upstream when the request fails afterwards (e.g. the output guard blocks)."""
    served: str | None = None
    sticky_source: str | None = None
    """Where the end-user key for sticky arms came from: ``field``, ``user`` or ``principal``."""


class CompletionService:
    def __init__(self, services: CompletionServices) -> None:
        self.s = services

    async def run(
        self,
        *,
        chat: ChatInput,
        principal: Principal,
        request_id: str,
        sticky: dict[str, str | None],
        cache_policy: CachePolicy | None = None,
        timeout_s: float | None = None,
        client_request_id: str | None = None,
    ) -> CompletionResult:
        """``request_id`` is the server's (it keys the usage record and the quota reservation);
        ``client_request_id`` the client's ``X-Request-ID``, kept for correlation only.
        ``timeout_s``: the client's ``X-Prism-Timeout`` (capped by ``retry.max_deadline_s``)."""
        snapshot = self.s.holder.current
        trace = RequestTrace(
            request_id=request_id,
            started_at=time.perf_counter(),
            deadline=asyncio.get_running_loop().time() + snapshot.config.deadline_for(chat.model, timeout_s),
        )
        record = UsageRecord(
            request_id=request_id,
            client_request_id=client_request_id,
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            tier=principal.tier,
            model_requested=chat.model,
            streamed=chat.stream,
            conversation_id=sticky.get("conversation"),
        )
        call = _Call(
            chat=chat,
            principal=principal,
            record=record,
            trace=trace,
            snapshot=snapshot,
            sticky_source=sticky.get("user_source"),
        )
        self._plan_cache(call, cache_policy or CachePolicy())
        # The quota reservation and the cache lookup are independent round trips: both are sent at once
        # (the multiplexed client writes them together) and stay in flight while the graph classifies,
        # routes and guards the prompt; its ``admit`` node waits for them before the first model call.
        # Nothing is answered, from the cache or upstream, before the reservation has passed.
        reserving = asyncio.ensure_future(self._reserve(call))
        admission = asyncio.ensure_future(self._admit(call, reserving))
        try:
            # One loop iteration for both tasks to put their commands on the wire (the multiplexed
            # client writes an iteration's first command at once) before the graph's CPU work;
            # without it the graph would run first and the round trip would not be hidden.
            await asyncio.sleep(0)
            return await self._execute(call, sticky, admission)
        except GatewayError as exc:
            await self._finish(call, error=exc, usage=call.usage, served=call.served)
            self._label_error(call, exc)
            raise
        except asyncio.CancelledError:
            await self._finish(
                call, status=UsageStatus.INCOMPLETE, http_status=499, usage=call.usage, served=call.served
            )
            raise
        finally:
            if not admission.done():  # the request ended before it was admitted (cancelled)
                admission.cancel()
                await asyncio.wait([admission])
            elif not admission.cancelled():
                admission.exception()  # a refusal the request did not wait for is not "never retrieved"
            if call.flight is not None and self.s.response_cache is not None and call.cache_key is not None:
                await self.s.response_cache.cache.leave_flight(call.cache_key, call.flight)
            if not reserving.done():
                reserving.cancel()
            elif call.ticket is None and not reserving.cancelled() and reserving.exception() is None:
                call.ticket = reserving.result()  # reserved, then the request failed: still settled
                await self._settle_unused(call)

    @staticmethod
    def _label_error(call: _Call, exc: GatewayError) -> None:
        """An error answer names its route (experiment arm included) and the model it was about, so
        a failure can be tied to its arm without a database join (issue #26)."""
        route = call.route
        if route is not None:
            exc.headers.setdefault("x-prism-route", route.label)
        model = call.served or (route.targets[0] if route is not None and route.targets else None)
        label = call.snapshot.model_label(model or call.chat.model)
        if label != OTHER:  # only configured names: the requested one is client text (any Unicode)
            exc.headers.setdefault("x-prism-model", label)

    async def _admit(
        self, call: _Call, reserving: asyncio.Future[QuotaTicket | None]
    ) -> dict[str, Any] | None:
        """The reservation passed (its 429 raised) and the cache's answer: an entry found or the
        leader's, or ``None`` to call upstream (as the single flight's leader, holding its lock)."""
        cache, key = self.s.response_cache, call.cache_key
        if cache is None or key is None:
            call.ticket = await reserving
            return None
        remaining = call.trace.deadline - asyncio.get_running_loop().time()
        flight = call.flight = await cache.cache.enter_flight(key, wait_s=remaining, count_miss=False)
        call.ticket = await reserving  # a refused request counts as neither a hit nor a miss
        if not flight and flight.entry is not None:
            metrics.CACHE_REQUESTS.labels(result="hit").inc()  # stored, or the leader's
            return flight.entry.response
        if not flight.checked:  # the in-process store, or a waiter whose leader failed: look now
            return await cache.lookup(key=key)
        if flight.leader:
            metrics.CACHE_REQUESTS.labels(result="miss").inc()
        return None

    async def _settle_unused(self, call: _Call) -> None:
        """A reservation whose request ended before it was taken up (e.g. the cache lookup failed)."""
        if call.ticket is not None and self.s.quotas is not None:
            await self.s.quotas.settle_soon(call.ticket, actual_tokens=0, actual_cost_usd=0.0)

    def explain(
        self, *, chat: ChatInput, principal: Principal, request_id: str, sticky: dict[str, str | None]
    ) -> dict[str, Any]:
        """The routing decision for a request, without calling any model (``POST /v1/route/explain``)."""
        snapshot = self.s.holder.current
        intent = None
        users = [message_text(m) for m in chat.messages if m.get("role") == "user"]
        if self.s.classifier is not None and users:
            intent = self.s.classifier.classify(users[-1], context=tuple(users[-4:-1]))
        decision = snapshot.router.route(
            requested=chat.model,
            principal=principal,
            intent=intent,
            prompt_tokens=chat.prompt_tokens,
            max_tokens=chat.params.get("max_completion_tokens") or chat.params.get("max_tokens"),
            sticky=sticky,
            request_id=request_id,
        )
        return {
            "model_requested": chat.model,
            "intent": None
            if intent is None
            else {
                "label": intent.label,
                "confidence": round(intent.confidence, 4),
                "complexity": round(intent.complexity, 4),
                "language": getattr(intent, "language", None),
            },
            "tier": decision.tier,
            "model": decision.targets[0],
            "fallbacks": list(decision.targets[1:]),
            "shadows": list(decision.shadows),
            "experiment": decision.experiment,
            "arm": decision.arm,
            "route": decision.label,
            "prompt_tokens": chat.prompt_tokens,
            "policy": decision.policy_summary,
        }

    async def _reserve(self, call: _Call) -> QuotaTicket | None:
        limiter = self.s.quotas
        if limiter is None:
            return None
        chat, snapshot = call.chat, call.snapshot
        max_out = chat.params.get("max_completion_tokens") or chat.params.get("max_tokens")
        config = snapshot.config.quotas
        limiter.config = config
        limits = limiter.limits_for(call.principal)
        estimate = limits.token_estimate(
            prompt_tokens=chat.prompt_tokens,
            max_tokens=int(max_out) if max_out else None,
            default_output=min(config.completion_estimate_tokens, snapshot.max_output_tokens),
        )
        worst_cost = (
            chat.prompt_tokens * snapshot.max_price_input
            + int(max_out or snapshot.max_output_tokens) * snapshot.max_price_output
        ) / 1e6
        return await limiter.check_and_reserve(
            request_id=call.trace.request_id,
            principal=call.principal,
            estimated_tokens=estimate,
            estimated_cost_usd=worst_cost,
            limits=limits,
        )

    def _plan_cache(self, call: _Call, policy: CachePolicy) -> None:
        cache = self.s.response_cache
        if cache is None:
            return
        key = cache.key_for(
            tenant=_cache_tenant(call.principal),
            model=call.chat.model,
            request={"messages": call.chat.messages, **call.chat.params},
            opt_in=policy.opt_in,
        )
        if key is None:
            return
        call.cache_write = policy.write
        call.cache_key = key if policy.read else None
        call.trace.cache_key = key
        if not policy.read:
            metrics.CACHE_REQUESTS.labels(result="bypass").inc()

    async def _execute(
        self, call: _Call, sticky: dict[str, str | None], admission: asyncio.Future[dict[str, Any] | None]
    ) -> CompletionResult:
        """Run the graph, which waits for ``admission`` (``_admit``) before calling a model."""
        chat, snapshot, trace = call.chat, call.snapshot, call.trace
        context = PipelineContext(
            snapshot=snapshot,
            principal=call.principal,
            trace=trace,
            guard=self.s.guard,
            shadow=self.s.shadow,
            classifier=self.s.classifier,
            admission=admission,
            sleep=self.s.sleep,
            sticky=sticky,
        )
        state: PipelineState = {
            "request": chat,
            "cache_key": call.cache_key,
            "needs_intent": self.s.classifier is not None and snapshot.router.needs_intent(chat.model),
            "max_attempts": snapshot.config.retry.max_attempts,
        }
        try:
            result = cast(PipelineState, await self.s.graph.ainvoke(state, context=context))
        except GatewayError:
            # Refused before admission (routing, the input guard): the reservation's refusal comes
            # first, and a cached answer is still served (a hit never depended on routing or guards).
            cached = await admission
            if cached is not None:
                return await self._answer_cached(call, cached)
            raise
        call.route = result.get("route")
        self._describe(call.record, call.route)
        error = result.get("error")
        if error is not None:
            call.usage = result.get("usage")
            call.served = self._served(trace) if call.usage is not None else None
            raise error
        cached = result.get("cached")
        if cached is not None:
            return await self._answer_cached(call, cached)
        headers = self._headers(call, result)
        handle = result.get("stream")
        if handle is not None:
            return CompletionResult(headers=headers, model=handle.target, stream=self._relay(handle, call))
        body = result.get("response")
        if body is None:
            raise RuntimeError("the graph produced neither a response nor an error")
        served = self._served(trace)
        if trace.shadow_pairs:
            trace.answer = _answer_text(body)
        if call.cache_write and trace.cache_key is not None and served is not None:
            await self._store(call, body, served)
        await self._finish(call, usage=result.get("usage"), served=served)
        return CompletionResult(headers=headers, body=body, model=served)

    async def _store(self, call: _Call, body: dict[str, Any], served: str) -> None:
        cache = self.s.response_cache
        target = call.snapshot.targets.get(served)
        if cache is None or target is None or call.trace.cache_key is None or target.config.cache_ttl_s <= 0:
            return
        await cache.store(
            key=call.trace.cache_key,
            response=body,
            model_served=served,
            provider=target.provider.kind,
            ttl_s=target.config.cache_ttl_s,
        )

    async def _answer_cached(self, call: _Call, cached: dict[str, Any]) -> CompletionResult:
        """Serve a stored answer in the shape the client asked for (JSON or SSE), as a cache hit."""
        call.record.cache_hit = True
        request_id = call.trace.request_id
        served = str(cached.get("model") or "")
        headers = {
            "x-prism-cache": "hit",
            "x-prism-model": served,
            **(call.ticket.headers() if call.ticket else {}),
        }
        body_usage = cached.get("usage") or {}
        usage = Usage(
            prompt_tokens=int(body_usage.get("prompt_tokens", 0)),
            completion_tokens=int(body_usage.get("completion_tokens", 0)),
        )
        await self._finish(call, usage=usage, served=served, cost_free=True)
        if not call.chat.stream:
            body = {**cached, "id": completion_id(request_id), "created": int(time.time())}
            return CompletionResult(headers=headers, body=body, model=served)
        entry = CachedEntry(response=cached, model_served=served, usage=cached.get("usage"))
        chunks = replay_chunks(entry, include_usage=call.chat.include_usage, request_id=request_id)

        async def replay() -> AsyncIterator[bytes]:
            for item in chunks:
                yield sse(item)
            yield b"data: [DONE]\n\n"

        return CompletionResult(headers=headers, stream=replay(), model=served)

    # -- streaming --------------------------------------------------------------------------

    async def _relay(self, handle: StreamHandle, call: _Call) -> AsyncIterator[bytes]:
        chat, trace, snapshot, record = call.chat, call.trace, call.snapshot, call.record
        target = snapshot.targets[handle.target]
        idle_s = target.config.timeouts.idle_s
        created = int(time.time())
        include_usage = chat.include_usage
        request_id = trace.request_id
        relayed = 0  # tokens relayed, counted once from ``text`` where needed (cheaper than per chunk)
        text: list[str] = []
        usage: Usage | None = None
        status = UsageStatus.INCOMPLETE
        error: GatewayError | None = None
        finish: str | None = None
        saw_tool_calls = False
        closing: list[bytes] = []  # the last frames, sent in one write
        ttft = handle.first_at - trace.started_at
        record.ttft_ms = round(ttft * 1000, 3)
        model_label = snapshot.model_label(handle.target)
        metrics.TIME_TO_FIRST_TOKEN.labels(model=model_label).observe(ttft)
        metrics.OPEN_STREAMS.inc()

        def frame(choices: list[dict[str, Any]]) -> bytes:
            return sse(
                chunk(
                    request_id=request_id,
                    model=handle.model,
                    created=created,
                    choices=choices,
                    with_usage_field=include_usage,
                )
            )

        deltas: AsyncIterator[Delta] = _prepend(handle.first, DRAIN.guard(handle.rest, idle_s, handle.target))
        for apply in handle.filters:
            deltas = apply(deltas)
        try:
            yield frame(
                [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ]
            )
            async for delta in deltas:
                if delta.content or delta.tool_calls:
                    body: dict[str, Any] = {}
                    if delta.content:
                        body["content"] = delta.content
                        text.append(delta.content)
                    if delta.tool_calls:
                        body["tool_calls"] = delta.tool_calls
                        saw_tool_calls = True
                    out = frame(
                        [{"index": delta.index, "delta": body, "logprobs": None, "finish_reason": None}]
                    )
                    if closing:  # another choice finished before this one (n > 1): keep the order
                        out = b"".join(closing) + out
                        closing.clear()
                    yield out
                if delta.usage is not None:
                    usage = delta.usage
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
                    # held back to leave in one write with what follows: the usage chunk and
                    # [DONE] once the books are closed, or the next choice's text (n > 1)
                    closing.append(
                        frame(
                            [{"index": delta.index, "delta": {}, "logprobs": None, "finish_reason": finish}]
                        )
                    )
            if finish is None:
                raise ProviderTimeout(
                    f"{handle.target}: stream ended without finishing", target=handle.target
                )
            if usage is None:
                relayed = count_text("".join(text))
            final = usage or Usage(prompt_tokens=chat.prompt_tokens, completion_tokens=relayed)
            if include_usage:
                closing.append(
                    sse(
                        chunk(
                            request_id=request_id,
                            model=handle.model,
                            created=created,
                            choices=[],
                            usage=final.as_openai(),
                        )
                    )
                )
            status = UsageStatus.OK
            if trace.shadow_pairs:  # the shadows start when the books close: give them the answer
                trace.answer = "".join(text)
            # The books close before the last frame: after it the client may leave and, during a
            # shutdown, this generator may never be resumed again.
            await self._finish(
                call, usage=usage or final, served=handle.target, status=status, http_status=200
            )
            closing.append(b"data: [DONE]\n\n")
            yield b"".join(closing)
        except GatewayError as exc:
            error = exc
            record.error_type = exc.code
            relayed = count_text("".join(text))
            log.warning("stream_failed", target=handle.target, error=exc.code, relayed_tokens=relayed)
            if trace.shadow_pairs:
                trace.answer = "".join(text)
            if isinstance(exc, ProviderError) and exc.retryable:  # a death mid-answer counts too
                snapshot.router.circuits.record_failure(handle.target)
            cut = Usage(
                prompt_tokens=usage.prompt_tokens if usage else chat.prompt_tokens, completion_tokens=relayed
            )
            await self._finish(call, usage=cut, served=handle.target, status=status, http_status=200)
            closing.append(sse(exc.body()))
            yield b"".join(closing)
        finally:
            # Account first, synchronously: once the client is gone or the server drains, this task may
            # be cancelled and every later await in this block raises at once.
            metrics.OPEN_STREAMS.dec()
            if status is UsageStatus.OK and usage is not None:
                final_usage = usage
            else:
                final_usage = Usage(
                    prompt_tokens=usage.prompt_tokens if usage else chat.prompt_tokens,
                    completion_tokens=relayed or count_text("".join(text)),
                )
            if error is not None:
                record.error_type = error.code
            elapsed = time.perf_counter() - handle.first_at
            if final_usage.completion_tokens > 1:
                metrics.TIME_PER_OUTPUT_TOKEN.labels(model=model_label).observe(
                    elapsed / (final_usage.completion_tokens - 1)
                )
            if trace.shadow_pairs:
                trace.answer = "".join(text)
            try:
                await self._finish(
                    call, usage=final_usage, served=handle.target, status=status, http_status=200
                )
                if status is UsageStatus.OK and call.cache_write and trace.cache_key and not saw_tool_calls:
                    body_out = chat_completion(
                        request_id=request_id,
                        model=handle.model,
                        usage=final_usage.as_openai(),
                        choices=[
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "".join(text)},
                                "finish_reason": finish,
                                "logprobs": None,
                            }
                        ],
                    )
                    await self._store(call, body_out, handle.target)
            finally:
                await aclose_quietly(handle.rest)

    # -- accounting -------------------------------------------------------------------------

    @staticmethod
    def _served(trace: RequestTrace) -> str | None:
        return next((attempt.target for attempt in reversed(trace.attempts) if attempt.outcome == "ok"), None)

    @staticmethod
    def _describe(record: UsageRecord, route: RouteDecision | None) -> None:
        if route is not None:
            record.intent = route.intent
            record.routing_tier = route.tier
            record.experiment = route.experiment
            record.arm = route.arm
            record.route = route.label

    @staticmethod
    def _headers(call: _Call, result: PipelineState) -> dict[str, str]:
        trace, route = call.trace, call.route
        headers = {"x-prism-cache": "miss" if trace.cache_key and call.cache_key else "bypass"}
        handle = result.get("stream")
        served = handle.target if handle is not None else CompletionService._served(trace)
        if served:
            headers["x-prism-model"] = served
        if route is not None:
            label = route.label.replace(f"model={route.targets[0]}", f"model={served}")
            if route.experiment is not None and call.sticky_source is not None:
                label += f";sticky={call.sticky_source}"  # where the arm's key came from (#26)
            headers["x-prism-route"] = label
        if trace.fallback_from is not None:
            headers["x-prism-fallback"] = f"{trace.fallback_from}->{served}"
        if trace.guard_header:
            headers["x-prism-guard"] = trace.guard_header
        if call.ticket is not None:
            headers.update(call.ticket.headers())
        return headers

    async def _finish(
        self,
        call: _Call,
        *,
        usage: Usage | None = None,
        served: str | None = None,
        error: GatewayError | None = None,
        status: UsageStatus | None = None,
        http_status: int | None = None,
        cost_free: bool = False,
    ) -> None:
        """Close the request's books exactly once: usage record, metrics, quota settlement."""
        if call.finished:
            return
        call.finished = True
        record, trace, snapshot = call.record, call.trace, call.snapshot
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
        if usage is not None:
            record.prompt_tokens = usage.prompt_tokens
            record.completion_tokens = usage.completion_tokens
            record.reasoning_tokens = usage.reasoning_tokens
            record.cached_tokens = usage.cached_tokens
            if target is not None and not cost_free:
                record.cost_usd = target.config.cost(usage.prompt_tokens, usage.completion_tokens)
            model = snapshot.model_label(served)
            provider = record.provider or "other"
            tier = record.tier or "other"
            for direction, count in (("input", usage.prompt_tokens), ("output", usage.completion_tokens)):
                metrics.TOKENS.labels(model=model, provider=provider, tier=tier, direction=direction).inc(
                    count
                )
                metrics.TOKEN_USAGE.labels(model=model, provider=provider, token_type=direction).observe(
                    count
                )
            if record.cost_usd:
                metrics.COST.labels(model=model, provider=provider, tier=tier).inc(record.cost_usd)
        spent = elapsed if not record.streamed else (record.ttft_ms or 0) / 1000
        metrics.GATEWAY_OVERHEAD.labels(route="/v1/chat/completions").observe(
            max(spent - trace.provider_time_s, 0.0)
        )
        if self.s.usage is not None:
            self.s.usage.record(record)
        self.s.holder.experiments.observe(record)
        access.note_usage(record, key_prefix=call.principal.api_key_prefix, messages=call.chat.messages)
        try:
            if call.ticket is not None and self.s.quotas is not None:
                await self.s.quotas.settle_soon(
                    call.ticket,
                    actual_tokens=record.prompt_tokens + record.completion_tokens,
                    actual_cost_usd=record.cost_usd,
                )
        finally:
            if trace.shadow_pairs and self.s.shadow is not None:
                # Last: the shadow calls start only once the primary is done (issue #5).
                self.s.shadow.launch(trace.shadow_pairs, _primary_side(trace, record))


def _cache_tenant(principal: Principal) -> str:
    """The cache's tenant: principals whose allow-lists differ never share entries, so a cached
    answer from a model one key may not use is never served to it (issue #18)."""
    if principal.model_policy is None:
        return principal.tenant
    lists = "\n".join([*sorted(principal.allowed_models), "|", *sorted(principal.user_allowed_models)])
    return f"{principal.tenant}~{hashlib.sha256(lists.encode()).hexdigest()[:16]}"


def _answer_text(body: Mapping[str, Any]) -> str:
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


async def _prepend(first: Delta, rest: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    yield first
    async for delta in rest:
        yield delta


async def _idle_guard(iterator: AsyncIterator[Delta], idle_s: float, target: str) -> AsyncIterator[Delta]:
    """Fail the stream when the upstream sends nothing for ``idle_s`` seconds."""
    while True:
        try:
            async with asyncio.timeout(idle_s):
                delta = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise ProviderTimeout(f"{target}: stream stalled for {idle_s:g}s", target=target) from exc
        yield delta
