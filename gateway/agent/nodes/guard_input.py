"""Apply the input policy for where the prompt is going (after routing, on purpose)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState


async def guard_input(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    snapshot = ctx.snapshot
    primary = snapshot.targets[state["route"].targets[0]]
    verdict = ctx.guard.check_input(
        state["request"].messages,
        patterns=snapshot.config.guardrails.input_block_patterns,
        is_local=primary.provider.is_local,
    )
    if verdict.header:
        ctx.trace.guard_header = verdict.header
    return {"messages": verdict.messages}
