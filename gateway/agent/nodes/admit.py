"""Wait for the request's admission before the first model call.

The completion service sends the quota reservation and the cache's lookup-or-lock before the graph
starts, and the graph classifies, routes and guards the prompt while they are in flight: their
round trip is hidden behind that work instead of added to it. Nothing reaches a model before the
reservation has passed (its 429 is raised here) and the cache has answered; a hit short-cuts to
``format``.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState


async def admit(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    admission = runtime.context.admission
    if admission is None:
        return {}
    cached = await admission
    return {"cached": cached} if cached is not None else {}
