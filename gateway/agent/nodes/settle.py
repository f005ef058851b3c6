"""Close the request's books: usage record, metrics, quota settlement, cache write, conversation
store and, last, the shadow calls. Every request that does not end in a live stream settles here,
errors included; a live stream settles when its relay ends (``deliver``)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.nodes.regenerate import regeneration_outcome
from gateway.agent.state import PipelineContext, PipelineState


async def settle(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    books = runtime.context.books
    if state.get("regenerated") is not None:  # the regenerated call failed before its guard
        regeneration_outcome(runtime.context, state, "failed", model=state["route"].targets[0])
    if books is not None:
        await books.settle(state)
    return {}
