"""Apply the output policy to the answer: un-mask placeholders, redact/flag/block.

Whole answers are checked here (a block becomes the request's error); for
streams a filter is appended to ``handle.filters`` and runs while the service
relays the stream in ``deliver`` (a block ends it with an error event). With
regeneration on for streams (``tools.regenerate.streams``), the stream's first
window is judged here, before the 200 (``agent/guard_window.py``): a block in it
is the request's error like a whole answer's, and may be regenerated.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.guard_window import hold_first_window
from gateway.agent.nodes.regenerate import late_block, regeneration_outcome
from gateway.agent.state import PipelineContext, PipelineState, StreamHandle
from gateway.config.guardrails import GuardPolicy
from gateway.errors import ContentBlocked, GatewayError
from gateway.guardrails import MaskTable
from gateway.providers.base import Usage


async def guard_output(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    policy = state.get("guard_policy")
    masks = state.get("masks")
    if policy is None or masks is None or not ctx.guard.wants_output(policy, masks):
        return {}
    handle = state.get("stream")
    if handle is not None:
        return await _guard_stream(state, ctx, handle, policy, masks)
    completion = state.get("completion")
    if completion is None:
        return {}
    model = ctx.trace.attempts[-1].target if ctx.trace.attempts else state["route"].targets[0]
    try:
        checked = ctx.guard.check_completion(
            ctx.snapshot.guardrails, completion, policy=policy, masks=masks, trace=ctx.trace, model=model
        )
    except GatewayError as exc:
        regeneration_outcome(ctx, state, "blocked", model=model, code=exc.code)
        return {"error": exc, "completion": None, "regenerated": None}
    if state.get("regenerated"):
        regeneration_outcome(ctx, state, "passed", model=model)
        return {"completion": checked, "regenerated": None}
    return {"completion": checked}


async def _guard_stream(
    state: PipelineState,
    ctx: PipelineContext,
    handle: StreamHandle,
    policy: GuardPolicy,
    masks: MaskTable,
) -> dict[str, Any]:
    apply = ctx.guard.stream_filter(
        ctx.snapshot.guardrails, policy=policy, masks=masks, trace=ctx.trace, model=handle.target
    )
    config = ctx.snapshot.config.tools.regenerate
    hold = (
        (state.get("regenerate", False) or state.get("regenerated") is not None)
        and config.streams
        and _can_block(policy)
        and ctx.delivery is not None
    )
    if not hold:
        handle.filters.append(apply)
        return {}
    assert ctx.delivery is not None
    blocked = await hold_first_window(
        handle,
        ctx.delivery.watched(handle),
        apply,
        hold_chars=config.stream_hold_chars,
        on_late_block=lambda exc: late_block(ctx, handle.target, exc),
    )
    if blocked is None:
        if state.get("regenerated"):
            regeneration_outcome(ctx, state, "passed", model=handle.target)
            return {"regenerated": None}
        return {}
    spent = Usage(prompt_tokens=state["request"].prompt_tokens, completion_tokens=blocked.completion_tokens)
    regeneration_outcome(ctx, state, "blocked", model=handle.target, code=blocked.error.code)
    error = ContentBlocked(
        blocked.error.message,
        code=blocked.error.code,
        headers={"x-prism-guard": ctx.trace.guard_header or ""},
    )
    return {"error": error, "stream": None, "usage": spent, "regenerated": None}


def _can_block(policy: GuardPolicy) -> bool:
    """Whether the output policy has a rule that blocks (else holding the first window is useless)."""
    output = policy.output
    if not (policy.enabled and output.enabled):
        return False
    return (
        output.pii_default == "block"
        or "block" in output.pii.values()
        or any(deny.action == "block" for deny in output.deny_patterns)
    )
