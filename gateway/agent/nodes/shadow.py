"""Mirror the (guarded) request to the route's shadow models without delaying the primary.

Each shadow call gets a ``ShadowPair`` (``gateway/experiments/shadow.py``) hung on the request's
trace: the job completes the shadow side (latency, TTFT, tokens, cost, error, text), the
completion service completes the primary side when the request finishes, and the pair is
compared and stored. A shadow keeps the primary's streaming mode, runs under the dispatcher's own
deadline and stops once its model's spend cap is reached (dropped, ``reason=spend_cap``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from langgraph.runtime import Runtime
from opentelemetry import trace

from gateway.agent.state import PipelineContext, PipelineState
from gateway.experiments.shadow import ShadowPair, ShadowResults, ShadowSide
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
    alias = ctx.snapshot.config.aliases.get(route.requested)
    caps = alias.shadow_spend_cap_usd if alias is not None else {}
    results = dispatcher.results
    primary = trace.get_current_span().get_span_context() if tracing.enabled() else None
    for name in route.shadows:
        label = ctx.snapshot.model_label(name)
        if not results.budget.allows(name, caps.get(name)):
            metrics.SHADOW_DROPPED.labels(model=label, reason="spend_cap").inc()
            continue
        if not dispatcher.has_room():
            metrics.SHADOW_DROPPED.labels(model=label, reason="queue_full").inc()
            continue
        target = ctx.snapshot.targets[name]
        call = ModelCall(model=target.upstream_model, messages=state["messages"], params=request.params)
        pair = results.new_pair(
            pair_id=uuid.uuid4().hex,
            request_id=ctx.trace.request_id,
            alias=route.requested,
            shadow_model=name,
            streamed=request.stream,
        )

        async def job(
            target: Any = target,
            call: ModelCall = call,
            streamed: bool = request.stream,
            name: str = name,
            pair: ShadowPair = pair,
            prompt_tokens: int = request.prompt_tokens,
        ) -> None:
            # Its own trace (it outlives the request), linked to the primary request's.
            with tracing.shadow_span(name, primary=primary, provider=target.provider.kind) as span:
                tracing.inject(call.headers, span=span)
                await _run_shadow(target, call, streamed, name, pair, prompt_tokens, results)

        dispatcher.submit(model=label, job=job, pair_id=pair.pair_id)
        ctx.trace.shadow_pairs.append(pair)
    return {}


async def _run_shadow(
    target: Any,
    call: ModelCall,
    streamed: bool,
    name: str,
    pair: ShadowPair,
    prompt_tokens: int,
    results: ShadowResults,
) -> None:
    started = time.perf_counter()
    side = ShadowSide(model=name)
    parts: list[str] = []
    usage: Usage | None = None
    try:
        if streamed:
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
        side.error = "timeout" if isinstance(exc, TimeoutError | asyncio.CancelledError) else (
            str(getattr(exc, "code", None) or type(exc).__name__)
        )
        raise
    finally:
        side.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if usage is None:
            usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=count_text("".join(parts)))
        side.prompt_tokens, side.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        side.cost_usd = target.config.cost(usage.prompt_tokens, usage.completion_tokens)
        results.budget.add(name, side.cost_usd)
        pair.complete_shadow(side)
