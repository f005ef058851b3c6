"""Apply the output policy to the answer; for streams, install a held-back-window filter."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.errors import GatewayError


async def guard_output(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    patterns = ctx.snapshot.config.guardrails.output_block_patterns
    if not patterns:
        return {}
    handle = state.get("stream")
    if handle is not None:
        handle.filters.append(ctx.guard.stream_filter(patterns=patterns))
        return {}
    completion = state.get("completion")
    if completion is not None:
        try:
            for choice in completion.choices:
                ctx.guard.check_output(choice.content or "", patterns=patterns)
        except GatewayError as exc:
            return {"error": exc, "completion": None}
    return {}
