"""Plan the mirroring of the (guarded) request to the route's shadow models.

The node only decides and prepares: for each shadow model it checks the spend cap and the
dispatcher's room, and hangs a ``ShadowPair`` with its job on the request's trace
(``gateway/experiments/shadow.py``). Nothing is called here: the completion service launches the
jobs once the primary has finished (``ShadowDispatcher.launch``), so a shadow never delays its
primary. The job fills the shadow side (latency, TTFT, tokens, cost, error, text); a shadow keeps
the primary's streaming mode, runs under the dispatcher's own deadline and stops once its model's
spend cap is reached (dropped, ``reason=spend_cap``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime
from opentelemetry import trace

from gateway.agent.state import PipelineContext, PipelineState
from gateway.experiments.shadow import ShadowJob, ShadowPair, ShadowResults, ShadowSide
from gateway.observability import metrics, tracing
from gateway.providers.base import ModelCall, Usage
from gateway.providers.tokens import count_text


async def shadow(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    dispatcher = ctx.shadow
    if dispatcher is None:
        return {}
    request = state["request"]
    route = state["route"]
    snapshot = ctx.snapshot
    alias = snapshot.config.aliases.get(route.requested)
    caps = alias.shadow_spend_cap_usd if alias is not None else {}
    results = dispatcher.results
    primary = (
        ctx.trace.primary_span or trace.get_current_span().get_span_context() if tracing.enabled() else None
    )
    messages = state["messages"]
    for name in route.shadows:
        label = snapshot.model_label(name)
        reason = (
            "spend_cap"
            if not results.budget.allows(name, caps.get(name))
            else "queue_full"
            if not dispatcher.has_room()
            else None
        )
        if reason is not None:
            metrics.SHADOW_DROPPED.labels(model=label, reason=reason).inc()
            results.drop_planned(  # a row, so the report counts the gap (issue #26)
                request_id=ctx.trace.request_id,
                alias=route.requested,
                shadow_model=name,
                streamed=request.stream,
                label=label,
                reason=reason,
            )
            continue
        pair = results.new_pair(
            request_id=ctx.trace.request_id,
            alias=route.requested,
            shadow_model=name,
            label=label,
            streamed=request.stream,
        )
        pair.prompt = messages
        pair.intent = state.get("intent")
        target = snapshot.targets[name]
        pair.job = _shadow_job(
            target=target,
            call=ModelCall(model=target.upstream_model, messages=messages, params=request.params),
            pair=pair,
            prompt_tokens=request.prompt_tokens,
            results=results,
            primary=primary,
        )
        ctx.trace.shadow_pairs.append(pair)
    return {}


def _shadow_job(
    *,
    target: Any,
    call: ModelCall,
    pair: ShadowPair,
    prompt_tokens: int,
    results: ShadowResults,
    primary: trace.SpanContext | None,
) -> ShadowJob:
    async def job() -> None:
        # Its own trace (it outlives the request), linked to the primary request's.
        with tracing.shadow_span(
            pair.shadow_model,
            primary=primary,
            provider=target.provider.kind,
            upstream_model=target.upstream_model,
            pair_id=pair.pair_id,
        ) as span:
            tracing.inject(call.headers, span=span)
            try:
                await _run_shadow(target, call, pair, prompt_tokens, results)
            finally:
                side = pair.shadow
                if side is not None and span.is_recording():
                    span.set_attribute("gen_ai.usage.input_tokens", side.prompt_tokens)
                    span.set_attribute("gen_ai.usage.output_tokens", side.completion_tokens)
                    span.set_attribute("prism.cost_usd", side.cost_usd)
                    if side.error is not None:
                        span.set_attribute("error.type", side.error)

    return job


async def _run_shadow(
    target: Any, call: ModelCall, pair: ShadowPair, prompt_tokens: int, results: ShadowResults
) -> None:
    started = time.perf_counter()
    name = pair.shadow_model
    side = ShadowSide(model=name)
    parts: list[str] = []
    usage: Usage | None = None
    try:
        if pair.streamed:
            async for delta in target.provider.stream(call):
                if side.ttft_ms is None and (delta.content or delta.tool_calls):
                    side.ttft_ms = round((time.perf_counter() - started) * 1000, 3)
                if delta.content:
                    parts.append(delta.content)
                if delta.usage is not None:
                    usage = delta.usage
        else:
            completion = await target.provider.complete(call)
            parts.append(completion.choices[0].content or "" if completion.choices else "")
            usage = completion.usage
        side.text = "".join(parts)
    except (Exception, asyncio.CancelledError) as exc:
        side.error = (
            "timeout"
            if isinstance(exc, TimeoutError | asyncio.CancelledError)
            else (str(getattr(exc, "code", None) or type(exc).__name__))
        )
        raise
    finally:
        side.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if usage is None:
            usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=count_text("".join(parts)))
        side.prompt_tokens, side.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        side.cost_usd = target.config.cost_of(usage)
        results.budget.add(name, side.cost_usd)
        pair.complete_shadow(side)
