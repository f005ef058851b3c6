"""Label the last user turn (intent, confidence, complexity) for routing and analytics.

For ``auto`` requests the classifier is unsure about (``routing.escalation``), a small LLM is asked
within a strict time budget; its label replaces the fast one only when it answers in time and clearly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import structlog
from langgraph.runtime import Runtime
from opentelemetry import trace

from gateway.agent.state import PipelineContext, PipelineState
from gateway.intent.batcher import Classified, classify_off_loop
from gateway.intent.tool_need import tools_needed
from gateway.observability import tracing
from gateway.providers.tokens import message_text
from gateway.routing.circuit import CircuitState
from gateway.routing.smart import escalate


async def intent(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    classifier = ctx.classifier
    if classifier is None or not state.get("needs_intent", False):
        return {"intent": None}
    request = state["request"]
    users = [message_text(m) for m in request.messages if m.get("role") == "user"]
    if not users:  # e.g. only an assistant prefill: smart routing still needs a label (was a 500)
        users = [message_text(request.messages[-1]) if request.messages else ""]
    classified = await classify_off_loop(classifier, users[-1], context=tuple(users[-4:-1]))
    result = classified.result
    _observe(result.stage, classified)
    snapshot = ctx.snapshot
    escalation = snapshot.config.routing.escalation
    if (
        escalation.enabled
        and escalation.model is not None
        and result.confidence < escalation.below_confidence
        and snapshot.router.is_smart(request.model)
    ):
        target = snapshot.targets.get(escalation.model)
        if target is not None and snapshot.router.circuits.state(target.name) is CircuitState.OPEN:
            target = None
        result = await escalate(
            result,
            text=users[-1],
            target=target,
            config=escalation,
            labels=tuple(snapshot.config.routing.intent_tiers),
        )
    needed = tools_needed(users[-1])
    if needed:
        result = dataclasses.replace(result, tools=needed)
    update: dict[str, Any] = {"intent": result}
    if state.get("tools_from_route"):
        update.update(_narrow(state, ctx, needed))
    return update


def _observe(stage: str, classified: Classified) -> None:
    """Which classifier stage decided, and for the encoder stage its batch size and queue wait."""
    wait_ms = round(classified.queue_wait_s * 1000, 3)
    structlog.contextvars.bind_contextvars(
        intent_stage=stage, intent_batch_size=classified.batch_size, intent_queue_wait_ms=wait_ms
    )
    if tracing.enabled():
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("intent.stage", stage)
            span.set_attribute("intent.batch_size", classified.batch_size)
            span.set_attribute("intent.queue_wait_ms", wait_ms)


def _narrow(state: PipelineState, ctx: PipelineContext, needed: tuple[str, ...]) -> dict[str, Any]:
    """``auto`` with tools offered by its route: offer only the tools the prompt needs (item 7)."""
    offered = state.get("server_tools") or []
    keep = [name for name in offered if name in needed]
    if keep == offered:
        return {}
    request = state["request"]
    dropped = set(offered) - set(keep)
    tools = [
        t for t in request.params.get("tools") or () if (t.get("function") or {}).get("name") not in dropped
    ]
    params = {k: v for k, v in request.params.items() if k != "tools"}
    if tools:
        params["tools"] = tools
    request.params = params
    return {"server_tools": keep}
