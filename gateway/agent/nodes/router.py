"""Resolve the requested model or alias into a chain of targets and shadows."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.observability import metrics


async def route(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    request = state["request"]
    decision = ctx.snapshot.router.route(
        requested=request.model,
        principal=ctx.principal,
        intent=state.get("intent"),
        prompt_tokens=request.prompt_tokens,
        max_tokens=request.params.get("max_completion_tokens") or request.params.get("max_tokens"),
        sticky=ctx.sticky,
        request_id=ctx.trace.request_id,
    )
    if decision.intent is not None:
        metrics.INTENTS.labels(intent=decision.intent, tier=decision.tier or "explicit").inc()
    return {"route": decision, "target_index": 0, "attempt": 0}
