"""One bounded regeneration after the output guard blocked a whole answer (issue #22, item 6).

With ``tools.regenerate.enabled``, a non-streamed answer the output policy blocks is not refused
at once: the flow asks again, once — the same conversation plus a corrective system note
(``tools.regenerate.note``), to ``tools.regenerate.model`` when set (and allowed to the principal)
or to the model that answered. A second block is the request's 400, as without regeneration. The
tokens of the blocked answer are booked (they were spent). Streams are guarded while they are
relayed, after their first token: they are not regenerated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from langgraph.runtime import Runtime

from gateway.agent.nodes.tools import book_usage
from gateway.agent.state import PipelineContext, PipelineState, ToolLoopBooks
from gateway.errors import ContentBlocked
from gateway.observability import metrics


async def after_output_guard(state: PipelineState) -> Literal["shadow", "deliver", "regenerate", "fail"]:
    error = state.get("error")
    if error is not None:
        if isinstance(error, ContentBlocked) and state.get("regenerate", False):
            return "regenerate"
        return "fail"
    return "shadow" if state["route"].shadows else "deliver"


async def regenerate(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    config = ctx.snapshot.config.tools.regenerate
    usage = state.get("usage")
    if usage is not None:  # the blocked answer's tokens were spent: book them like a loop round
        books = ctx.trace.tools = ctx.trace.tools or ToolLoopBooks()
        book_usage(ctx, books, usage)
    metrics.GUARD_ACTIONS.labels(stage="output", category="regenerate", action="retry").inc()
    route = state["route"]
    target = config.model
    if target is not None and target in ctx.snapshot.targets and ctx.principal.may_use(target):
        route = dataclasses.replace(route, targets=(target,))
    else:
        route = dataclasses.replace(route, targets=route.targets[state.get("target_index", 0) :])
    messages = [*state["messages"], {"role": "system", "content": config.note}]
    return {
        "messages": messages,
        "route": route,
        "target_index": 0,
        "attempt": 0,
        "error": None,
        "completion": None,
        "usage": None,
        "regenerate": False,
    }
