"""Mirror the (guarded) request to the route's shadow models without delaying the primary."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.providers.base import ModelCall


async def shadow(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    dispatcher = ctx.shadow
    if dispatcher is None:
        return {}
    request = state["request"]
    for name in state["route"].shadows:
        target = ctx.snapshot.targets[name]
        call = ModelCall(model=target.upstream_model, messages=state["messages"], params=request.params)

        async def job(target: Any = target, call: ModelCall = call, streamed: bool = request.stream) -> None:
            if streamed:
                async for _ in target.provider.stream(call):
                    pass
            else:
                await target.provider.complete(call)

        dispatcher.submit(model=ctx.snapshot.model_label(name), job=job)
    return {}
