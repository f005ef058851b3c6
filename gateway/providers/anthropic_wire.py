"""The Anthropic Messages wire format for ``provider: anthropic``: pure mappings, no I/O.

``request_body`` maps a ``ModelCall`` (OpenAI-shaped messages and parameters) to a Messages
request, or — when the request came in on ``/v1/messages`` and the gateway changed none of its
messages — returns the client's native body with the upstream model id (``native_body``).
``completion_from`` maps an answer back; ``StreamDecoder`` maps SSE events to ``Delta``s.

The native answer of an upstream can be handed back to the ``/v1/messages`` edge through
``NATIVE_ANSWERS``, a request-scoped context variable the edge sets (None otherwise: OpenAI
traffic pays one lookup).
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import (
    ContextTooLong,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    UnsupportedParameter,
)
from gateway.providers.base import Choice, Completion, ModelCall, Usage

NATIVE_KEY = "anthropic"
"""``params[NATIVE_KEY]``: ``{"body", "beta", "version", "digest"}`` of a ``/v1/messages`` request."""

NATIVE_ANSWERS: contextvars.ContextVar[dict[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "prism_anthropic_native_answers", default=None
)
"""Target name → the upstream's native answer (JSON) or final stream state, for the ``/v1/messages`` edge."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic ``stop_reason`` → OpenAI ``finish_reason``."""


def messages_digest(messages: list[dict[str, Any]]) -> str:
    return hashlib.blake2b(orjson.dumps(messages), digest_size=16).hexdigest()


def native_body(call: ModelCall) -> dict[str, Any] | None:
    """The client's own Messages body when it may be sent unchanged (its messages are the ones the
    gateway is sending: no guard masked anything), else None."""
    native = call.params.get(NATIVE_KEY)
    if not isinstance(native, dict) or native.get("digest") != messages_digest(call.messages):
        return None
    body: dict[str, Any] = dict(native["body"])
    body["model"] = call.model
    return body


def _data_url(url: str) -> tuple[str, str] | None:
    if not url.startswith("data:") or ";base64," not in url:
        return None
    media, data = url[5:].split(";base64,", 1)
    return media, data


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "input_text"):
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            inline = _data_url(url)
            source = (
                {"type": "base64", "media_type": inline[0], "data": inline[1]}
                if inline
                else {"type": "url", "url": url}
            )
            blocks.append({"type": "image", "source": source})
        elif kind == "file" and _data_url(str((part.get("file") or {}).get("file_data", ""))):
            media, data = _data_url(str(part["file"]["file_data"])) or ("", "")
            blocks.append(
                {"type": "document", "source": {"type": "base64", "media_type": media, "data": data}}
            )
        else:
            raise UnsupportedParameter(
                f"content parts of type {kind!r} are not supported by Anthropic models"
            )
    return blocks


def _arguments(raw: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(raw) if isinstance(raw, str) and raw else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def anthropic_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """OpenAI messages → (system, Anthropic messages): system/developer turns join the system prompt,
    ``tool`` turns become ``tool_result`` blocks of a user turn, and consecutive turns of one role
    are merged (Anthropic wants them alternating)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(
                block["text"] for block in _blocks(message.get("content")) if block["type"] == "text"
            )
            continue
        if role == "tool":
            text = message.get("content")
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": text if isinstance(text, str) else _blocks(text),
            }
            blocks, role = [result], "user"
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": _arguments(function.get("arguments")),
                    }
                )
        else:
            blocks, role = _blocks(message.get("content")), "user"
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return ("\n\n".join(system) or None), out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    if isinstance(choice, dict):
        out: dict[str, Any] = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        out = {"type": {"required": "any", "none": "none"}.get(str(choice), "auto")}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def request_body(call: ModelCall, *, stream: bool, default_max_tokens: int) -> dict[str, Any]:
    """The upstream Messages request for a call (the native body when it may be sent unchanged)."""
    body = native_body(call)
    if body is None:
        body = translated_body(call, default_max_tokens=default_max_tokens)
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return body


def translated_body(call: ModelCall, *, default_max_tokens: int) -> dict[str, Any]:
    params = call.params
    if int(params.get("n") or 1) != 1:
        raise UnsupportedParameter(
            "n > 1 is not supported for this model; send n separate requests", param="n"
        )
    system, messages = anthropic_messages(call.messages)
    limit = params.get("max_completion_tokens") or params.get("max_tokens") or default_max_tokens
    body: dict[str, Any] = {"model": call.model, "messages": messages, "max_tokens": int(limit)}
    if system:
        body["system"] = system
    if params.get("temperature") is not None:
        body["temperature"] = min(float(params["temperature"]), 1.0)  # Anthropic's range is 0..1
    if params.get("top_p") is not None:
        body["top_p"] = params["top_p"]
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("tools"):
        body["tools"] = [
            {
                "name": tool["function"]["name"],
                "description": tool["function"].get("description") or "",
                "input_schema": tool["function"].get("parameters") or {"type": "object", "properties": {}},
            }
            for tool in params["tools"]
        ]
        choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    if params.get("user"):
        body["metadata"] = {"user_id": str(params["user"])}
    for key, value in (params.get("extra") or {}).items():
        body.setdefault(key, value)  # vendor fields an OpenAI client sent (top_k, thinking, …)
    return body


def usage_from(data: Any, into: Usage | None = None) -> Usage:
    """Anthropic usage → ``Usage``; ``prompt_tokens`` include the cache reads and writes,
    ``cached_tokens`` are the reads (OpenAI's meaning), ``cache_write_tokens`` the writes."""
    usage = into or Usage()
    if not isinstance(data, dict):
        return usage
    fresh = data.get("input_tokens")
    read = data.get("cache_read_input_tokens")
    written = data.get("cache_creation_input_tokens")
    if fresh is not None or read is not None or written is not None:
        usage.prompt_tokens = int(fresh or 0) + int(read or 0) + int(written or 0)
        usage.cached_tokens = int(read or 0)
        usage.cache_write_tokens = int(written or 0)
    if data.get("output_tokens") is not None:
        usage.completion_tokens = int(data["output_tokens"])
    return usage


def completion_from(data: Any, *, target: str, model: str) -> Completion:
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ProviderBadResponse(f"{target}: malformed message", target=target)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input", {})).decode(),
                    },
                }
            )
    finish = FINISH_REASONS.get(str(data.get("stop_reason")), "stop")
    text = "".join(texts)
    choice = Choice(
        index=0, content=text if text or not calls else None, finish_reason=finish, tool_calls=calls or None
    )
    return Completion(
        model=str(data.get("model") or model), choices=[choice], usage=usage_from(data.get("usage"))
    )


def error_for_status(
    status: int, body: Any, *, target: str, retry_after: float | None = None
) -> ProviderError:
    """An upstream's non-2xx answer (``{"type":"error","error":{"type","message"}}``) as a provider
    error: 429 rate limited, 529/5xx unavailable (both retryable), 400 the client's fault (a too
    long prompt raises ``ContextTooLong``), 401/403/404 a configuration fault (502, not retried)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    detail = str(error.get("message") or f"upstream returned {status}")
    kind = str(error.get("type") or "")
    message = f"{target}: upstream returned {status} {kind}: {detail}"[:500]
    if status == 429:
        return ProviderRateLimited(message, target=target, upstream_status=status, retry_after=retry_after)
    if status >= 500 or status in (408, 409):
        return ProviderUnavailable(message, target=target, upstream_status=status)
    if status in (400, 413, 422):
        if "prompt is too long" in detail.lower():
            raise ContextTooLong(f"{target}: prompt exceeds the model's context window")
        return ProviderRejected(message, target=target, upstream_status=status)
    return ProviderBadResponse(message, target=target, upstream_status=status)


def stream_error(event: Mapping[str, Any], *, target: str) -> ProviderError:
    """An ``error`` event sent after the 200 (e.g. ``overloaded_error``)."""
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    kind = str(error.get("type") or "api_error")  # type: ignore[union-attr]
    status = {"overloaded_error": 529, "rate_limit_error": 429, "invalid_request_error": 400}.get(kind, 500)
    return error_for_status(status, {"error": error}, target=target)
