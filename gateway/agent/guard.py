"""The guard service the guard nodes call: configured deny patterns on input and output.

Compiled once per config snapshot. A blocked input is a 400
``content_policy_violation``; a blocked output ends the answer with the same
error (non-streamed) or an error event (streamed).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gateway.errors import InvalidRequest
from gateway.observability import metrics
from gateway.providers.base import Delta
from gateway.providers.tokens import message_text


class ContentBlocked(InvalidRequest):
    default_code = "content_policy_violation"


@lru_cache(maxsize=16)
def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.IGNORECASE)


@dataclass(slots=True)
class InputVerdict:
    messages: list[dict[str, Any]]
    header: str | None = None


class GuardService:
    def check_input(
        self, messages: list[dict[str, Any]], *, patterns: Iterable[str], is_local: bool
    ) -> InputVerdict:
        pattern = _compile(tuple(patterns))
        if pattern is not None:
            for message in messages:
                if message.get("role") in ("user", "tool") and pattern.search(message_text(message)):
                    metrics.GUARD_ACTIONS.labels(stage="input", category="deny_pattern", action="block").inc()
                    raise ContentBlocked(
                        "The request was blocked by the gateway's input policy", param="messages"
                    )
        return InputVerdict(messages=messages)

    def check_output(self, text: str, *, patterns: Iterable[str]) -> None:
        pattern = _compile(tuple(patterns))
        if pattern is not None and pattern.search(text):
            metrics.GUARD_ACTIONS.labels(stage="output", category="deny_pattern", action="block").inc()
            raise ContentBlocked("The answer was withheld by the gateway's output policy")

    def stream_filter(self, *, patterns: Iterable[str], window: int = 64) -> Any:
        """A stream filter holding back `window` characters so a phrase split across chunks is caught."""
        pattern = _compile(tuple(patterns))

        async def apply(deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
            if pattern is None:
                async for delta in deltas:
                    yield delta
                return
            tail = ""
            held = ""
            async for delta in deltas:
                if delta.content:
                    tail = (tail + delta.content)[-window * 4 :]
                    if pattern.search(tail):
                        metrics.GUARD_ACTIONS.labels(
                            stage="output", category="deny_pattern", action="block"
                        ).inc()
                        raise ContentBlocked("The answer was withheld by the gateway's output policy")
                    held += delta.content
                    if len(held) > window:
                        yield Delta(content=held[:-window], index=delta.index)
                        held = held[-window:]
                if delta.tool_calls:
                    yield Delta(tool_calls=delta.tool_calls, index=delta.index)
                if delta.finish_reason is not None or delta.usage is not None:
                    if held:
                        yield Delta(content=held, index=delta.index)
                        held = ""
                    yield Delta(finish_reason=delta.finish_reason, usage=delta.usage, index=delta.index)
            if held:
                yield Delta(content=held)

        return apply
