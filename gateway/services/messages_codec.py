"""Anthropic Messages ⇄ the gateway's OpenAI-shaped request and answer (the ``/v1/messages`` edge).

``chat_input`` turns a validated Messages request into the ``ChatInput`` every model is called with
(so routing, guards, quotas, cache and accounting are the chat flow's own), and keeps the client's
native body beside it (``params["anthropic"]``) for an Anthropic upstream to send unchanged.
``message_from_completion`` renders the flow's answer as an Anthropic ``message``. What cannot be
expressed for a non-Anthropic model is listed in docs/anthropic.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.agent.state import ChatInput
from gateway.errors import InvalidRequest
from gateway.providers.anthropic_wire import NATIVE_KEY, messages_digest
from gateway.providers.tokens import count_messages
from gateway.schemas.anthropic import MessagesRequest

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
"""OpenAI ``finish_reason`` → Anthropic ``stop_reason``."""


def _invalid(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code="invalid_value")


def _text_of(blocks: Any, param: str) -> str:
    """The text of a string or of a list of ``text`` blocks (system prompts, tool results)."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise _invalid(param, "must be a string or a list of content blocks")
    texts = []
    for position, block in enumerate(blocks):
        where = f"{param}.{position}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid(where, "each content block must be an object with a type")
        if block["type"] == "text":
            texts.append(_string(block, "text", where))
    return "\n".join(texts)


def _string(block: Mapping[str, Any], field: str, where: str) -> str:
    value = block.get(field)
    if not isinstance(value, str):
        raise _invalid(f"{where}.{field}", "Field required (a string)")
    return value


def _image_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _invalid(f"{where}.source", "Field required (an object)")
    kind = source.get("type")
    if kind == "base64":
        media = _string(source, "media_type", f"{where}.source")
        if media not in ("image/jpeg", "image/png", "image/gif", "image/webp"):
            raise _invalid(
                f"{where}.source.media_type", "must be image/jpeg, image/png, image/gif or image/webp"
            )
        data = _string(source, "data", f"{where}.source")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url":
        return {"type": "image_url", "image_url": {"url": _string(source, "url", f"{where}.source")}}
    raise _invalid(f"{where}.source.type", "must be base64 or url")


def _document_part(block: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _invalid(f"{where}.source", "Field required (an object)")
    if source.get("type") == "text":
        return {"type": "text", "text": _string(source, "data", f"{where}.source")}
    if source.get("type") == "base64":
        media = _string(source, "media_type", f"{where}.source")
        data = _string(source, "data", f"{where}.source")
        name = block.get("title") if isinstance(block.get("title"), str) else "document"
        return {"type": "file", "file": {"filename": name, "file_data": f"data:{media};base64,{data}"}}
    return None  # url or file-id sources: only an Anthropic upstream can read them


def _tool_result(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    tool_use_id = _string(block, "tool_use_id", where)
    content = block.get("content", "")
    text = _text_of(content, f"{where}.content") if content is not None else ""
    if block.get("is_error") is True:
        text = f"[tool error] {text}"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _tool_call(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise _invalid(f"{where}.input", "must be an object")
    return {
        "id": _string(block, "id", where),
        "type": "function",
        "function": {"name": _string(block, "name", where), "arguments": orjson.dumps(arguments).decode()},
    }


def openai_messages(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conversation as OpenAI chat messages: ``system`` first, ``tool_result`` blocks as ``tool``
    messages (before the rest of their user turn), ``tool_use`` blocks as ``tool_calls``, images as
    ``image_url`` data URLs. Thinking blocks and server-tool blocks have no OpenAI form and are left
    out (an Anthropic upstream receives the native body instead)."""
    out: list[dict[str, Any]] = []
    if raw.get("system") is not None:
        system = _text_of(raw["system"], "system")
        if system:
            out.append({"role": "system", "content": system})
    for index, message in enumerate(raw["messages"]):
        role, content = message["role"], message["content"]
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for position, block in enumerate(content):
            where = f"messages.{index}.content.{position}"
            kind = block.get("type")
            if not isinstance(kind, str):
                raise _invalid(f"{where}.type", "Field required (a string)")
            if kind == "text":
                parts.append({"type": "text", "text": _string(block, "text", where)})
            elif kind == "image":
                parts.append(_image_part(block, where))
            elif kind == "document":
                part = _document_part(block, where)
                if part is not None:
                    parts.append(part)
            elif kind == "tool_use" and role == "assistant":
                calls.append(_tool_call(block, where))
            elif kind == "tool_result" and role == "user":
                out.append(_tool_result(block, where))
            elif kind in ("tool_use", "tool_result"):
                raise _invalid(f"{where}.type", f"a {kind} block cannot appear in a {role} message")
        if role == "assistant":
            text = "".join(part["text"] for part in parts if part["type"] == "text")
            assistant: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                assistant["tool_calls"] = calls
            if text or calls:
                out.append(assistant)
        elif parts:
            only_text = all(part["type"] == "text" for part in parts)
            out.append(
                {"role": "user", "content": "\n".join(p["text"] for p in parts) if only_text else parts}
            )
    return out


def _openai_tools(raw_tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tools = []
    for tool in raw_tools:
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool (web search, bash, …): only an Anthropic upstream runs it
        function: dict[str, Any] = {
            "name": tool["name"],
            "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(choice: Mapping[str, Any]) -> str | dict[str, Any]:
    kind = choice["type"]
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise _invalid("tool_choice.name", "Field required when type is tool")
        return {"type": "function", "function": {"name": choice["name"]}}
    return {"auto": "auto", "any": "required", "none": "none"}[kind]


def chat_input(
    request: MessagesRequest,
    raw: Mapping[str, Any],
    *,
    beta: str | None = None,
    version: str | None = None,
) -> ChatInput:
    """The Messages request as the flow's ``ChatInput`` (see the module docstring)."""
    messages = openai_messages(raw)
    if not messages:
        raise _invalid("messages", "the messages have no content a model can read")
    # Anthropic's default temperature is 1.0: said explicitly, so the cache treats an unset one as
    # non-deterministic (OpenAI-compatible upstreams receive their own default, 1).
    params: dict[str, Any] = {
        "max_tokens": request.max_tokens,
        "temperature": 1.0 if request.temperature is None else request.temperature,
    }
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop_sequences:
        params["stop"] = list(request.stop_sequences)
    if raw.get("tools"):
        tools = _openai_tools(raw["tools"])
        if tools:
            params["tools"] = tools
    if request.tool_choice is not None and params.get("tools"):
        params["tool_choice"] = _tool_choice(raw["tool_choice"])
        if request.tool_choice.disable_parallel_tool_use:
            params["parallel_tool_calls"] = False
    if request.metadata is not None and request.metadata.user_id:
        params["user"] = request.metadata.user_id
    params[NATIVE_KEY] = {
        "body": {key: value for key, value in raw.items() if key != "stream"},  # as in cache keys
        "beta": beta,
        "version": version,
        "digest": messages_digest(messages),
    }
    return ChatInput(
        model=request.model,
        messages=messages,
        params=params,
        stream=request.stream,
        include_usage=True,
        metadata={},
        prompt_tokens=count_messages(messages),
    )


def _input(arguments: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def usage_block(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage → Anthropic's: ``input_tokens`` exclude the cache reads (``cache_read_input_tokens``)."""
    usage = usage or {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "input_tokens": max(int(usage.get("prompt_tokens") or 0) - cached, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def message_from_completion(
    body: Mapping[str, Any], *, request_id: str, native: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The flow's chat completion as an Anthropic ``message``. ``native``: the Anthropic upstream's
    own answer, used as is (thinking blocks, citations, the matched stop sequence, cache-write
    tokens) when the gateway changed nothing in it (same text and tool calls)."""
    choice = body["choices"][0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": _input(function.get("arguments")),
            }
        )
    answer: dict[str, Any] = {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": STOP_REASONS.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": usage_block(body.get("usage")),
    }
    if native is not None and same_answer(native, content):
        answer.update({key: value for key, value in native.items() if key not in ("id", "type", "role")})
    return answer


def same_answer(native: Mapping[str, Any], content: list[dict[str, Any]]) -> bool:
    """Whether the upstream's native content says what the gateway would send (text and tool calls)."""
    blocks = native.get("content")
    if not isinstance(blocks, list):
        return False
    text = "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    ours = "".join(str(b["text"]) for b in content if b["type"] == "text")
    theirs_calls = [
        (b.get("id"), b.get("name"), b.get("input"))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    our_calls = [(b["id"], b["name"], b["input"]) for b in content if b["type"] == "tool_use"]
    return text == ours and theirs_calls == our_calls
