"""The mock provider: deterministic, streaming, token-counting, with injectable latency and faults.

Answers are derived from the last user message so tests can assert them; the
knobs (latency before the first token, delay per token, failure rate and kind,
a stream cut after N tokens) let demos and tests provoke 429/5xx/timeouts.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.config.providers import MockSettings
from gateway.errors import ProviderRateLimited, ProviderUnavailable, UnsupportedParameter
from gateway.providers.base import Choice, Completion, Delta, ModelCall, Provider, Usage
from gateway.providers.tokens import count_messages, count_text, message_text

_WORD = re.compile(r"\S+\s*|\s+")
_FILLER = [
    "the",
    "gateway",
    "routes",
    "each",
    "prompt",
    "to",
    "the",
    "cheapest",
    "model",
    "that",
    "can",
    "answer",
    "it",
    "while",
    "guarding",
    "inputs",
    "and",
    "outputs",
    "and",
    "recording",
    "usage",
    "for",
    "every",
    "request",
]


class MockProvider(Provider):
    kind = "mock"
    supports_n = True

    def __init__(self, *, name: str, settings: MockSettings) -> None:
        super().__init__(name=name, is_local=True)
        self.settings = settings
        self._random = random.Random(settings.seed)

    def reply_for(self, call: ModelCall) -> tuple[str, list[dict[str, Any]] | None]:
        """The deterministic answer text (or tool calls) for a call."""
        last = call.messages[-1] if call.messages else {}
        text = message_text(last)
        if last.get("role") == "tool":
            return f"Tool result received: {text[:300]}", None
        tool_call = self._tool_call(call, text)
        if tool_call is not None:
            return "", [tool_call]
        reply = f"{call.model} says: {text[:500]}"
        if self.settings.answer_words:
            words = [_FILLER[(len(text) + i) % len(_FILLER)] for i in range(self.settings.answer_words)]
            reply = f"{reply} {' '.join(words)}"
        response_format = call.params.get("response_format") or {}
        if response_format.get("type") in {"json_object", "json_schema"}:
            reply = orjson.dumps({"answer": reply}).decode()
        return reply, None

    @staticmethod
    def _tool_call(call: ModelCall, text: str) -> dict[str, Any] | None:
        tools = call.params.get("tools") or []
        choice = call.params.get("tool_choice")
        if not tools or choice == "none":
            return None
        names = [tool["function"]["name"] for tool in tools]
        chosen: str | None = None
        if isinstance(choice, dict):
            chosen = choice.get("function", {}).get("name")
        elif choice == "required":
            chosen = names[0]
        else:
            lowered = text.lower()
            chosen = next((name for name in names if name.lower() in lowered), None)
        if chosen is None:
            return None
        arguments = orjson.dumps({"input": text[:100]}).decode()
        return {
            "id": f"call_{abs(hash((chosen, text))) % 10**12:012d}",
            "type": "function",
            "function": {"name": chosen, "arguments": arguments},
        }

    @staticmethod
    def _apply_limits(reply: str, call: ModelCall) -> tuple[str, str]:
        finish = "stop"
        stop = call.params.get("stop")
        for sequence in [stop] if isinstance(stop, str) else (stop or []):
            position = reply.find(sequence)
            if position >= 0:
                reply = reply[:position]
        limit = call.params.get("max_completion_tokens") or call.params.get("max_tokens")
        if limit is not None:
            words = _WORD.findall(reply)
            kept: list[str] = []
            used = 0
            for word in words:
                cost = count_text(word)
                if used + cost > limit:
                    finish = "length"
                    break
                kept.append(word)
                used += cost
            reply = "".join(kept)
        return reply, finish

    async def _maybe_fail(self) -> None:
        settings = self.settings
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        if settings.failure_rate and self._random.random() < settings.failure_rate:
            if settings.failure_kind == "429":
                raise ProviderRateLimited(
                    f"{self.name}: rate limited (mock)",
                    target=self.name,
                    retry_after=settings.retry_after_s,
                    upstream_status=429,
                )
            if settings.failure_kind == "hang":
                await asyncio.sleep(3600)
            status = int(settings.failure_kind)
            raise ProviderUnavailable(
                f"{self.name}: upstream error {status} (mock)", target=self.name, upstream_status=status
            )

    async def complete(self, call: ModelCall) -> Completion:
        await self._maybe_fail()
        reply, tool_calls = self.reply_for(call)
        reply, finish = self._apply_limits(reply, call)
        completion_tokens = count_text(reply)
        if self.settings.token_delay_ms:
            await asyncio.sleep(self.settings.token_delay_ms * completion_tokens / 1000)
        n = int(call.params.get("n") or 1)
        if tool_calls:
            choices = [
                Choice(index=i, content=None, finish_reason="tool_calls", tool_calls=tool_calls)
                for i in range(n)
            ]
            completion_tokens = count_text(orjson.dumps(tool_calls).decode())
        else:
            choices = [Choice(index=i, content=reply, finish_reason=finish) for i in range(n)]
        usage = Usage(prompt_tokens=count_messages(call.messages), completion_tokens=completion_tokens * n)
        return Completion(model=call.model, choices=choices, usage=usage)

    async def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        await self._maybe_fail()
        if int(call.params.get("n") or 1) != 1:
            raise UnsupportedParameter(
                "n > 1 is not supported with stream=true by the mock provider", param="n"
            )
        reply, tool_calls = self.reply_for(call)
        prompt_tokens = count_messages(call.messages)
        if tool_calls:
            call_delta = [{"index": 0, **tool_calls[0]}]
            yield Delta(tool_calls=call_delta)
            tokens = count_text(orjson.dumps(tool_calls).decode())
            yield Delta(
                finish_reason="tool_calls", usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=tokens)
            )
            return
        reply, finish = self._apply_limits(reply, call)
        delay = self.settings.token_delay_ms / 1000
        cut = self.settings.cut_after_tokens
        sent: list[str] = []
        for word in _WORD.findall(reply):
            if cut is not None and len(sent) >= cut:
                raise ProviderUnavailable(
                    f"{self.name}: stream cut after {len(sent)} chunks (mock)", target=self.name
                )
            if delay:
                await asyncio.sleep(delay)
            sent.append(word)
            yield Delta(content=word)
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=count_text("".join(sent)))
        yield Delta(finish_reason=finish, usage=usage)
