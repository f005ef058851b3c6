"""The flow's SSE relay (OpenAI chunks) re-framed as Anthropic's stream events for ``/v1/messages``.

``message_start`` and a ``ping`` go out with the relay's first chunk (which the flow sends as soon
as the model's first token is there); text becomes a ``text`` block with ``text_delta``s,
each tool call a ``tool_use`` block with ``input_json_delta``s; the finish reason and usage close
the last block and end with ``message_delta`` (``stop_reason``, ``usage``) and ``message_stop``.
An error after the 200 (the relay's ``{"error": …}`` frame) becomes an ``error`` event. The relay
has closed the request's books (the usage record) before its last frame, as on the chat route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from gateway.schemas.anthropic import error_body
from gateway.services.messages_codec import STOP_REASONS, message_id, usage_block


def event(name: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _frames(chunk: bytes) -> list[bytes]:
    return [line[6:] for line in chunk.split(b"\n") if line.startswith(b"data: ")]


class MessageStream:
    """Per-stream state: the open content block and what the ``message_delta`` will say."""

    def __init__(self, *, request_id: str, model: str, prompt_tokens: int) -> None:
        self.request_id = request_id
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.index = -1  # the open (or last) content block
        self.open: str | None = None  # "text" or "tool:<n>"
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.started = False

    def start(self, native: Mapping[str, Any] | None, model: Any = None) -> bytes:
        """``message_start`` + ``ping``, sent with the relay's first chunk: the model is the one that
        chunk names (the upstream's), the usage an Anthropic upstream's own ``message_start`` usage
        when it answered, else the counted input tokens."""
        self.started = True
        usage: dict[str, Any] = {"input_tokens": self.prompt_tokens, "output_tokens": 0}
        if native and isinstance(native.get("usage"), dict):
            usage = {k: v for k, v in native["usage"].items() if isinstance(v, int)} or usage
        message: dict[str, Any] = {
            "id": message_id(self.request_id),
            "type": "message",
            "role": "assistant",
            "model": (native or {}).get("model") or model or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return event("message_start", {"type": "message_start", "message": message}) + event(
            "ping", {"type": "ping"}
        )

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _begin(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self.open = kind
        return out + event(
            "content_block_start",
            {"type": "content_block_start", "index": self.index, "content_block": block},
        )

    def native_blocks(self, native: Mapping[str, Any] | None) -> bytes:
        """An Anthropic upstream's completed thinking blocks (no OpenAI form, so not in the relay's
        chunks), sent whole in their place: before the text or tool call that followed them."""
        pending = native.get("pending") if native else None
        out = b""
        while pending:
            block = pending.pop(0)
            if block.get("type") != "thinking":  # redacted_thinking: the whole block at the start
                out += self._begin("native", block) + self._close()
                continue
            out += self._begin("native", {"type": "thinking", "thinking": "", "signature": ""})
            for delta in (
                {"type": "thinking_delta", "thinking": block.get("thinking", "")},
                {"type": "signature_delta", "signature": block.get("signature") or ""},
            ):
                out += event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": self.index, "delta": delta},
                )
            out += self._close()
        return out

    def chunk(self, data: Mapping[str, Any]) -> bytes:
        """One OpenAI chunk (or the relay's error frame) → the Anthropic events it means."""
        if "error" in data:
            status = 503 if data["error"].get("type") in ("upstream_error", "timeout_error") else 500
            body = error_body(status, str(data["error"].get("message") or "stream failed"))
            return self._close() + event("error", body)
        out = b""
        if data.get("usage"):
            self.usage = dict(data["usage"])
        for choice in data.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.open != "text":
                    out += self._begin("text", {"type": "text", "text": ""})
                out += event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.index,
                        "delta": {"type": "text_delta", "text": delta["content"]},
                    },
                )
            for call in delta.get("tool_calls") or ():
                kind = f"tool:{call.get('index', 0)}"
                function = call.get("function") or {}
                if self.open != kind:
                    block = {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": {},
                    }
                    out += self._begin(kind, block)
                if function.get("arguments"):
                    out += event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": self.index,
                            "delta": {"type": "input_json_delta", "partial_json": function["arguments"]},
                        },
                    )
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(str(choice["finish_reason"]), "end_turn")
                out += self._close()
        return out

    def finish(self, native: Mapping[str, Any] | None) -> bytes:
        """``message_delta`` + ``message_stop``; an Anthropic upstream's own stop reason, stop
        sequence and usage (cache reads and writes) when it answered."""
        usage = usage_block(self.usage)
        closing = self._close() + self.native_blocks(native)
        delta: dict[str, Any] = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None}
        if native:
            if native.get("stop_reason"):
                delta["stop_reason"] = native["stop_reason"]
            delta["stop_sequence"] = native.get("stop_sequence")
            usage.update({k: v for k, v in (native.get("usage") or {}).items() if isinstance(v, int)})
        return (
            closing
            + event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
            + event("message_stop", {"type": "message_stop"})
        )


async def anthropic_events(
    relay: AsyncIterator[bytes],
    *,
    stream: MessageStream,
    answers: Mapping[str, Mapping[str, Any]],
    served: str | None,
) -> AsyncIterator[bytes]:
    """Re-frame the relay. ``answers``: where an Anthropic upstream left its final stream state
    (``NATIVE_ANSWERS``). The relay is closed on every exit (its ``finally`` settles the request
    if the client left early)."""
    try:
        async for chunk in relay:
            out = b""
            for data in _frames(chunk):
                native = answers.get(served) if served else None
                if data == b"[DONE]":
                    out += b"" if stream.started else stream.start(native)
                    out += stream.finish(native)
                    continue
                try:
                    decoded = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(decoded, dict):
                    if not stream.started and "error" not in decoded:
                        out += stream.start(native, decoded.get("model"))
                    out += stream.native_blocks(native)
                    out += stream.chunk(decoded)
            if out:
                yield out
    finally:
        close = getattr(relay, "aclose", None)
        if close is not None:
            await close()
