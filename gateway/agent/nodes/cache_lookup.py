"""Serve an identical earlier answer from the response cache, when one is configured."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState


async def cache_lookup(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    cache = ctx.cache
    if cache is None or not ctx.snapshot.config.cache.enabled:
        return {"cached": None, "cache_key": None}
    request = state["request"]
    key = cache.key_for(
        tenant=ctx.principal.tenant,
        model=request.model,
        request={"messages": request.messages, **request.params},
    )
    if key is None:
        return {"cached": None, "cache_key": None}
    return {"cached": await cache.lookup(key=key), "cache_key": key}
