"""Serve an identical earlier answer from the response cache, when one is configured."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState


async def cache_lookup(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    """The service decided cacheability and the key (tenant, model, normalised request); look it up."""
    cache = runtime.context.cache
    key = state.get("cache_key")
    if cache is None or key is None:
        return {"cached": None}
    return {"cached": await cache.lookup(key=key)}
