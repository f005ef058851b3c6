"""Wait for the admission ``admit`` sent: the reservation's 429, or the cache's answer.

The order of verdicts: a quota refusal comes first; then a cache hit, which beats a refusal by the
decide steps (an unknown model, a blocked prompt: a stored answer never depended on routing or
guards); then that refusal; else the request goes upstream.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.errors import GatewayError


async def gate(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    admission = runtime.context.admission
    if admission is None:
        return {}
    try:
        cached = await admission.outcome()
    except GatewayError as exc:
        return {"error": exc}
    return {"cached": cached, "error": None} if cached is not None else {}
