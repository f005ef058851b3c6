"""One bounded regeneration after the output guard blocked an answer (issue #22, item 6).

With ``tools.regenerate.enabled``, an answer the output policy blocks is not refused at once: the
flow asks again, once — the same conversation plus a corrective system note
(``tools.regenerate.note``), to ``tools.regenerate.model`` when set (and allowed to the principal)
or to the model that answered. A second block is the request's 400, as without regeneration. The
tokens of the blocked answer are booked (they were spent).

Whole answers (``mode=sync``) and streams whose first window the guard judged before anything was
sent (``mode=stream``, ``agent/guard_window.py``) are regenerated; a stream blocked after its first
token has been relayed ends with an error event as without regeneration (``too_late``).
Observability: ``prism_guard_regenerations_total{mode,outcome}``, the ``guard_regeneration`` log
event and the ``prism.guard.regenerate`` span event on the ``regenerate`` node's span.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import structlog
from langgraph.runtime import Runtime
from opentelemetry import trace

from gateway.agent.nodes.tools import book_usage
from gateway.agent.state import PipelineContext, PipelineState, ToolLoopBooks
from gateway.errors import ContentBlocked, GatewayError
from gateway.observability import metrics

log = structlog.get_logger("prism.guard")


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
    blocked = ctx.trace.attempts[-1].target if ctx.trace.attempts else state["route"].targets[0]
    if usage is not None:  # the blocked answer's tokens were spent: book them like a loop round
        books = ctx.trace.tools = ctx.trace.tools or ToolLoopBooks()
        book_usage(ctx, books, usage)
    mode = "stream" if state["request"].stream else "sync"
    metrics.GUARD_ACTIONS.labels(stage="output", category="regenerate", action="retry").inc()
    route = state["route"]
    target = config.model
    if target is not None and target in ctx.snapshot.targets and ctx.principal.may_use(target):
        route = dataclasses.replace(route, targets=(target,))
    else:
        route = dataclasses.replace(route, targets=route.targets[state.get("target_index", 0) :])
    error = state.get("error")
    code = error.code if isinstance(error, GatewayError) else None
    fields = {
        "mode": mode,
        "blocked_model": blocked,
        "model": route.targets[0],
        "code": code,
        "wasted_tokens": usage.total_tokens if usage is not None else 0,
    }
    log.info("guard_regeneration", request_id=ctx.trace.request_id, outcome="started", **fields)
    trace.get_current_span().add_event(
        "prism.guard.regenerate", {key: value for key, value in fields.items() if value is not None}
    )
    messages = [*state["messages"], {"role": "system", "content": config.note}]
    return {
        "messages": messages,
        "route": route,
        "target_index": 0,
        "attempt": 0,
        "error": None,
        "completion": None,
        "stream": None,
        "usage": None,
        "regenerate": False,
        "regenerated": mode,
    }


def regeneration_outcome(
    ctx: PipelineContext, state: PipelineState, outcome: str, *, model: str, code: str | None = None
) -> None:
    """Count the regenerated answer's outcome (a no-op for a first answer)."""
    mode = state.get("regenerated")
    if mode is None:
        return
    metrics.GUARD_REGENERATIONS.labels(mode=mode, outcome=outcome).inc()
    log.info(
        "guard_regeneration",
        request_id=ctx.trace.request_id,
        mode=mode,
        outcome=outcome,
        model=model,
        code=code,
    )


def late_block(ctx: PipelineContext, model: str, error: ContentBlocked) -> None:
    """A held stream blocked after its first window went out: too late to ask again."""
    metrics.GUARD_REGENERATIONS.labels(mode="stream", outcome="too_late").inc()
    log.info(
        "guard_regeneration",
        request_id=ctx.trace.request_id,
        mode="stream",
        outcome="too_late",
        model=model,
        code=error.code,
    )
