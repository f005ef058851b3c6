"""Move to the next target of the chain after the current one is exhausted."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.observability import metrics


async def fallback(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    targets = state["route"].targets
    index = state.get("target_index", 0)
    label = ctx.snapshot.model_label
    metrics.FALLBACKS.labels(from_target=label(targets[index]), to_target=label(targets[index + 1])).inc()
    if ctx.trace.fallback_from is None:
        ctx.trace.fallback_from = targets[index]
    return {"target_index": index + 1, "attempt": 0, "error": None}
