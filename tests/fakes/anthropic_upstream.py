"""A fake Anthropic upstream speaking the real Messages wire protocol (aiohttp, no FastAPI).

``POST /v1/messages`` answers JSON or SSE (``message_start``, ``content_block_start``,
``content_block_delta`` with ``text_delta``/``input_json_delta``/``thinking_delta``/
``signature_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``, ``ping``) with the
API's exact shapes; it requires ``x-api-key`` (when ``api_key`` is set) and ``anthropic-version``,
records every request, answers tool calls, honours ``stop_sequences`` and ``max_tokens``, reports
prompt-cache writes then reads for blocks marked ``cache_control``, and returns a thinking block
when ``thinking`` is enabled. ``POST /v1/messages/count_tokens`` counts words.

Faults (the base class's selection: ``fail_next``/``fail_status``, model ``fake-<mode>``, header
``X-Fake-Mode``): any status (``429`` with ``retry-after``, ``529`` ``overloaded_error``, …),
``hang``, ``cut`` (the connection drops mid-answer), and ``midstream`` (a stream that sends an
``overloaded_error`` event after its first text delta).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import (
    FakeUpstream,
    count_tokens,
    drop_connection,
    fake_arguments,
    json_response,
    run_in_thread,
    split_tokens,
)

_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str | None = None) -> dict[str, Any]:
    kind = _ERRORS.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message or f"fake {kind}"}}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _marked(value: Any) -> bool:
    """Whether any block carries ``cache_control``."""
    if isinstance(value, dict):
        return "cache_control" in value or any(_marked(v) for v in value.values())
    if isinstance(value, list):
        return any(_marked(v) for v in value)
    return False


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class FakeAnthropicUpstream(FakeUpstream):
    kind = "anthropic"
    default_models = ("claude-fake", "claude-sonnet-4-5")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.cached_prefixes: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self.cached_prefixes.clear()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self.messages),
            web.post("/v1/messages/count_tokens", self.count),
        ]

    def error_response(self, status: int, model: str, message: str | None = None) -> web.Response:
        headers = {"request-id": "req_" + uuid.uuid4().hex}
        if status == 429:
            headers["retry-after"] = f"{self.config.retry_after:g}"
        return json_response(anthropic_error(status, message), status=status, headers=headers)

    def authorized(self, request: web.Request) -> bool:
        key = self.config.api_key
        return key is None or request.headers.get("x-api-key") == key

    async def count(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.record(request, body, body.get("model"))
        words = sum(count_tokens(_text(m.get("content"))) for m in body.get("messages") or [])
        return json_response({"input_tokens": words + count_tokens(_text(body.get("system")))})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.record(request, raw.decode(errors="replace"), None)
            return self.error_response(400, "", "invalid JSON")
        model = str(body.get("model") or "") if isinstance(body, dict) else ""
        self.record(request, body, model)
        if not self.authorized(request):
            return self.error_response(401, model, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self.error_response(400, model, "anthropic-version: header is required")
        if not isinstance(body, dict) or not model or not isinstance(body.get("max_tokens"), int):
            return self.error_response(400, model, "max_tokens: Field required")
        mode = self._mode(request, model)
        if mode.isdigit():
            return self.error_response(int(mode), model)
        delay, chunk_delay = self.timing(mode)
        if delay:
            await asyncio.sleep(delay)
        message = self.plan(body, model)
        if body.get("stream"):
            return await self._stream(request, message, mode, chunk_delay)
        payload = orjson.dumps(message)
        if mode == "cut":
            return await self.cut_json(request, payload, "application/json")
        return web.Response(body=payload, content_type="application/json", headers={"request-id": "req_1"})

    def _mode(self, request: web.Request, model: str) -> str:
        name = model.rsplit("/", 1)[-1]
        if name in ("fake-529", "fake-midstream"):
            self.per_outcome[name[5:]] += 1
            return name[5:]
        return self.pick_mode(request, model)

    def plan(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        content = last.get("content")
        results = [b for b in content if b.get("type") == "tool_result"] if isinstance(content, list) else []
        user_text = _text(content)
        input_tokens = sum(count_tokens(_text(m.get("content"))) + 3 for m in messages)
        input_tokens += count_tokens(_text(body.get("system")))
        usage: dict[str, Any] = {
            "input_tokens": max(input_tokens, 1),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        }
        marked = _marked(body.get("system")) or _marked(messages) or _marked(body.get("tools"))
        if marked:
            prefix = hashlib.sha1(orjson.dumps([body.get("system"), body.get("tools")])).hexdigest()
            cached = 1000  # the marked prefix, as the real API counts a long system prompt
            key = (
                "cache_read_input_tokens" if prefix in self.cached_prefixes else "cache_creation_input_tokens"
            )
            usage[key] = cached
            self.cached_prefixes.add(prefix)
        blocks: list[dict[str, Any]] = []
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            blocks.append({"type": "thinking", "thinking": "Let me think.", "signature": "sig-fake-1"})
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("input_schema")]
        choice = body.get("tool_choice") or {}
        wanted = choice.get("name") if choice.get("type") == "tool" else None
        trigger = self.config.tool_trigger.lower()
        if (
            tools
            and not results
            and choice.get("type") != "none"
            and (wanted or choice.get("type") == "any" or (trigger and trigger in user_text.lower()))
        ):
            tool = next((t for t in tools if t["name"] == wanted), tools[0])
            arguments = fake_arguments(tool.get("input_schema"), user_text)
            blocks.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + uuid.uuid4().hex[:24],
                    "name": tool["name"],
                    "input": arguments,
                }
            )
            usage["output_tokens"] = count_tokens(orjson.dumps(arguments).decode()) + 5
            return self._message(model, blocks, "tool_use", None, usage)
        if results:
            text = "tool result: " + _text(results[0].get("content"))
        elif self.config.reply is not None:
            text = self.config.reply
        else:
            text = "echo: " + user_text[: self.config.max_echo_chars]
        pieces = split_tokens(text)
        stop_reason, matched = "end_turn", None
        for sequence in body.get("stop_sequences") or []:
            position = "".join(pieces).find(sequence)
            if position >= 0:
                pieces, stop_reason, matched = (
                    split_tokens("".join(pieces)[:position]),
                    "stop_sequence",
                    sequence,
                )
                break
        if len(pieces) > body["max_tokens"]:
            pieces, stop_reason, matched = pieces[: body["max_tokens"]], "max_tokens", None
        blocks.append({"type": "text", "text": "".join(pieces)})
        usage["output_tokens"] = max(len(pieces), 1)
        return self._message(model, blocks, stop_reason, matched, usage)

    @staticmethod
    def _message(
        model: str, blocks: list[dict[str, Any]], stop: str, matched: str | None, usage: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": matched,
            "usage": usage,
        }

    async def _stream(
        self, request: web.Request, message: dict[str, Any], mode: str, chunk_delay: float
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
        start["usage"] = {**usage, "output_tokens": 1}
        await response.write(_sse("message_start", {"type": "message_start", "message": start}))
        await response.write(_sse("ping", {"type": "ping"}))
        sent = 0
        for index, block in enumerate(message["content"]):
            empty = {**block, "text": ""} if block["type"] == "text" else dict(block)
            if block["type"] == "tool_use":
                empty["input"] = {}
            if block["type"] == "thinking":
                empty.update(thinking="", signature="")
            await response.write(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": empty},
                )
            )
            for delta in self._deltas(block):
                if mode == "cut" and sent >= self.config.cut_after:
                    drop_connection(request)
                    return response
                await response.write(
                    _sse(
                        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                    )
                )
                sent += 1
                if mode == "midstream":
                    error = anthropic_error(529, "Overloaded")
                    await response.write(_sse("error", error))
                    return response
                if chunk_delay:
                    await asyncio.sleep(chunk_delay)
            await response.write(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        final = {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
            "usage": usage,
        }
        await response.write(_sse("message_delta", final))
        await response.write(_sse("message_stop", {"type": "message_stop"}))
        return response

    @staticmethod
    def _deltas(block: dict[str, Any]) -> list[dict[str, Any]]:
        if block["type"] == "text":
            return [{"type": "text_delta", "text": piece} for piece in split_tokens(block["text"])]
        if block["type"] == "tool_use":
            encoded = orjson.dumps(block["input"]).decode()
            middle = len(encoded) // 2
            return [
                {"type": "input_json_delta", "partial_json": part}
                for part in (encoded[:middle], encoded[middle:])
            ]
        if block["type"] == "thinking":
            return [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        return []


@contextlib.contextmanager
def running_fake_anthropic(**options: Any) -> Iterator[FakeAnthropicUpstream]:
    """The fake in a background thread (sync or async tests): ``with running_fake_anthropic() as fake``."""
    server = FakeAnthropicUpstream(**options)
    with run_in_thread(server):
        yield server
