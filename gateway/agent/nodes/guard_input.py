"""Apply the input policy for where the prompt is going (after routing, on purpose).

A block becomes the request's ``error`` (a 400 ``ContentBlocked``, unless ``gate`` finds a cached
answer or a quota refusal first); otherwise the masked copies become
``state["messages"]`` (sent to every attempt, fallback and shadow) and the
``MaskTable`` is kept for the output guard. See ``gateway/agent/guard.py`` for
the policy choice when the chain mixes local and external targets.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.errors import GatewayError


async def guard_input(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    snapshot = ctx.snapshot
    route = state["route"]
    policy = ctx.guard.policy_for_route(snapshot.guardrails, snapshot.targets, route)
    try:
        guarded = ctx.guard.check_input(
            snapshot.guardrails,
            state["request"].messages,
            policy=policy,
            trace=ctx.trace,
            model=route.targets[0],
        )
    except GatewayError as exc:
        return {"error": exc}
    return {"messages": guarded.messages, "guard_policy": guarded.policy, "masks": guarded.masks}
