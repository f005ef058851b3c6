"""Frame the answer: a cached answer, a JSON body, or the SSE relay of a live stream.

The relay (``DeliveryPort.answer`` for a stream) sends the first delta the call step waited for,
then the rest through the output guard's filters, and settles the request's books before its last
frame (usage durable before ``[DONE]``, docs/resilience.md).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState


async def deliver(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    delivery = runtime.context.delivery
    assert delivery is not None, "the request flow runs with a delivery port"
    cached = state.get("cached")
    return {"reply": delivery.cached(cached) if cached is not None else delivery.answer(state)}
