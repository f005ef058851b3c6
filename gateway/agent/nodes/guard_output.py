"""Apply the output policy to the answer: un-mask placeholders, redact/flag/block.

Whole answers are checked here (a block becomes the request's error); for
streams a filter is appended to ``handle.filters`` and runs while the service
relays the stream in ``deliver`` (a block ends it with an error event).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.errors import GatewayError


async def guard_output(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    policy = state.get("guard_policy")
    masks = state.get("masks")
    if policy is None or masks is None or not ctx.guard.wants_output(policy, masks):
        return {}
    guardrails = ctx.snapshot.guardrails
    handle = state.get("stream")
    if handle is not None:
        handle.filters.append(
            ctx.guard.stream_filter(
                guardrails, policy=policy, masks=masks, trace=ctx.trace, model=handle.target
            )
        )
        return {}
    completion = state.get("completion")
    if completion is None:
        return {}
    model = ctx.trace.attempts[-1].target if ctx.trace.attempts else state["route"].targets[0]
    try:
        checked = ctx.guard.check_completion(
            guardrails, completion, policy=policy, masks=masks, trace=ctx.trace, model=model
        )
    except GatewayError as exc:
        return {"error": exc, "completion": None}
    return {"completion": checked}
