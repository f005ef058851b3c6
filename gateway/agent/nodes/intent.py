"""Label the last user turn (intent, confidence, complexity) for routing and analytics."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.providers.tokens import message_text


async def intent(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    classifier = runtime.context.classifier
    if classifier is None:
        return {"intent": None}
    users = [message_text(m) for m in state["request"].messages if m.get("role") == "user"]
    if not users:
        return {"intent": None}
    return {"intent": classifier.classify(users[-1], context=tuple(users[-4:-1]))}
