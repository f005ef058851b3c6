"""Send the request's admission: the quota reservation and the cache's lookup-or-lock.

Both round trips are sent at once, first thing, and stay in flight while the flow classifies,
routes and guards the prompt: their latency hides behind that work. ``gate`` waits for them before
the first model call, so nothing is answered, from the cache or upstream, before the reservation
has passed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState


async def admit(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    admission = runtime.context.admission
    if admission is not None:
        admission.begin()
        # One loop iteration for both tasks to put their commands on the wire (the multiplexed
        # client writes an iteration's first command at once) before the flow's CPU work.
        await asyncio.sleep(0)
    return {}
