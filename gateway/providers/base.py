"""The provider interface and the normalised types every adapter maps to.

A provider turns a ``ModelCall`` (OpenAI-shaped messages and parameters, the
upstream model id, per-attempt timeouts) into a ``Completion`` or a stream of
``Delta``s. Adapters translate vendor exceptions into the ``ProviderError``
branch of ``gateway.errors`` at this edge; nothing above knows a wire format.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 5.0
    first_token_s: float = 30.0
    total_s: float = 120.0
    idle_s: float = 30.0


@dataclass(slots=True)
class ModelCall:
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    include_usage: bool = True
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    """Prompt tokens written to the provider's prompt cache (Anthropic); part of ``prompt_tokens``."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_openai(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        body["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        body["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return body


@dataclass(slots=True)
class Choice:
    index: int
    content: str | None
    finish_reason: str | None = "stop"
    tool_calls: list[dict[str, Any]] | None = None

    def as_openai(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return {
            "index": self.index,
            "message": message,
            "finish_reason": self.finish_reason,
            "logprobs": None,
        }


@dataclass(slots=True)
class Completion:
    model: str
    choices: list[Choice]
    usage: Usage
    raw: dict[str, Any] | None = None
    """The upstream's own ``chat.completion`` body (OpenAI-compatible upstreams): what the client gets,
    with the documented exceptions only (docs/api.md, "Transparency"); ``None`` for other providers."""


@dataclass(slots=True)
class Delta:
    """One streamed increment. ``tool_calls`` holds OpenAI-shaped tool call deltas (with ``index``)."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    index: int = 0
    frames: tuple[dict[str, Any], ...] = ()
    """The upstream chunks this delta stands for, in order (OpenAI-compatible upstreams): relayed as
    sent, with the documented exceptions only (``gateway/providers/frames.py``); the fields above are
    their reading for accounting and the guard. Empty for other providers (the relay frames those)."""


class Provider(abc.ABC):
    """One configured upstream. ``is_local`` drives guardrail policy (no masking before local models)."""

    kind: str = "base"
    supports_n: bool = False

    def __init__(self, *, name: str, is_local: bool) -> None:
        self.name = name
        self.is_local = is_local

    @abc.abstractmethod
    async def complete(self, call: ModelCall) -> Completion: ...

    @abc.abstractmethod
    def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        """Async iterator of deltas; the last carries ``usage`` (counted here if the upstream does not)."""

    async def list_models(self) -> list[str]:
        return []

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


async def aclose_quietly(iterator: object) -> None:
    """Close an async generator (an upstream stream) whose outcome is already decided; a failure
    while closing a broken connection must not replace the error being reported."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            pass
