"""Build the OpenAI response body (non-streamed and cached answers; streams are framed by the service)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.schemas.openai import chat_completion


async def format_response(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    if state.get("error") is not None or state.get("stream") is not None:
        return {}
    cached = state.get("cached")
    if cached is not None:
        return {"response": {**cached, "id": f"chatcmpl-{runtime.context.trace.request_id}"}}
    completion = state.get("completion")
    if completion is None:
        return {}
    body = chat_completion(
        request_id=runtime.context.trace.request_id,
        model=completion.model,
        choices=[choice.as_openai() for choice in completion.choices],
        usage=completion.usage.as_openai(),
    )
    return {"response": body}
