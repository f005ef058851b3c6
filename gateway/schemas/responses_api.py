"""OpenAI Responses API, request side: a ``POST /v1/responses`` body → chat messages and parameters.

The body is checked by hand rather than by a pydantic union so that every refusal names the exact
parameter the way OpenAI does (``input[2].content[0].image_url``, ``tools[1].type``). What maps how:

- ``input`` (a string, or a list of items) → chat messages: ``message`` items (any role; parts
  ``input_text``/``output_text`` → text, ``input_image`` → ``image_url``, ``input_file`` with
  ``file_data`` → ``file``, ``refusal`` → the assistant's ``refusal``), ``function_call`` items →
  the preceding assistant message's ``tool_calls``, ``function_call_output`` → a ``tool`` message.
- ``instructions`` → a leading ``system`` message (not carried over by ``previous_response_id``).
- function ``tools`` (flat shape) → chat tools; ``tool_choice`` likewise; ``max_output_tokens`` →
  ``max_completion_tokens``; ``text.format`` → ``response_format``; ``reasoning.effort`` →
  ``reasoning_effort``; ``text.verbosity``, ``service_tier``, ``prompt_cache_key``,
  ``safety_identifier``, ``top_logprobs`` pass through as the chat fields of the same meaning.

Refused with a 400 naming the parameter: built-in tools (web search, file search, computer use,
code interpreter, MCP, …), ``background``, ``conversation``, ``prompt`` templates, reasoning and
other non-function items in ``input``, ``item_reference``, images or files by ``file_id``, and any
parameter the Responses API does not define (``unknown_parameter``, as OpenAI answers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequest, UnsupportedParameter

KNOWN_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "max_output_tokens", "temperature", "top_p", "text", "metadata", "store",
        "previous_response_id", "stream", "stream_options", "user", "safety_identifier",
        "prompt_cache_key", "prompt_cache_retention", "include", "truncation", "reasoning",
        "service_tier", "top_logprobs", "max_tool_calls", "background", "conversation", "prompt",
        "context_management",
    }
)  # fmt: skip
REFUSED_FIELDS = {
    "background": "background mode is not supported by this gateway; send the request without it",
    "conversation": "conversation objects are not supported; chain responses with previous_response_id",
    "prompt": "stored prompt templates are not supported; send instructions and input instead",
    "context_management": "server-side context management is not supported",
}
_PASSTHROUGH = ("service_tier", "prompt_cache_key", "prompt_cache_retention", "safety_identifier")
_ROLES = frozenset({"user", "assistant", "system", "developer"})


@dataclass(slots=True)
class ResponsesRequest:
    """A validated Responses request: the chat messages of *this* request (without ``instructions``
    and without history), the chat parameters, and what the response object echoes back."""

    model: str
    messages: list[dict[str, Any]]
    input_items: list[dict[str, Any]]
    params: dict[str, Any]
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_choice: Any
    stream: bool
    store: bool
    previous_response_id: str | None
    metadata: dict[str, str]
    truncation: str
    echo: dict[str, Any] = field(default_factory=dict)
    """Request fields the response object repeats (temperature, top_p, text, reasoning, …)."""


def _fail(message: str, param: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _string(value: Any, param: str, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise _fail(f"Invalid type for '{param}': expected a string, but got {_type_name(value)}.", param)
    if not empty and not value:
        raise _fail(f"Invalid '{param}': empty string.", param, "empty_string")
    return value


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"Invalid type for '{param}': expected an object, but got {_type_name(value)}.", param)
    return value


def _array(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"Invalid type for '{param}': expected an array, but got {_type_name(value)}.", param)
    return value


def _number(value: Any, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(f"Invalid type for '{param}': expected a number, but got {_type_name(value)}.", param)
    if not low <= value <= high:
        raise _fail(f"Invalid '{param}': {value} is outside [{low:g}, {high:g}].", param, "invalid_value")
    return float(value)


def _integer(value: Any, param: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"Invalid type for '{param}': expected an integer, but got {_type_name(value)}.", param)
    if value < low:
        raise _fail(
            f"Invalid '{param}': integer below minimum value {low}.", param, "integer_below_min_value"
        )
    return value


def _boolean(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(f"Invalid type for '{param}': expected a boolean, but got {_type_name(value)}.", param)
    return value


# -- input ------------------------------------------------------------------------------------------


def _part(part: Any, param: str, role: str) -> dict[str, Any]:
    part = _object(part, param)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": _string(part.get("text"), f"{param}.text")}
    if kind == "refusal":
        return {"type": "refusal", "refusal": _string(part.get("refusal"), f"{param}.refusal")}
    if kind == "input_image":
        if role not in ("user", "system", "developer"):
            raise _fail(f"Invalid '{param}': images are only allowed in user messages.", f"{param}.type")
        url = part.get("image_url")
        if url is None:
            raise UnsupportedParameter(
                f"'{param}': images by file_id are not supported; send image_url (a URL or a data URL).",
                param=f"{param}.file_id" if part.get("file_id") is not None else f"{param}.image_url",
            )
        image: dict[str, Any] = {"url": _string(url, f"{param}.image_url", empty=False)}
        if part.get("detail") is not None:
            detail = _string(part["detail"], f"{param}.detail")
            if detail not in ("auto", "low", "high", "original"):
                raise _fail(f"Invalid value for '{param}.detail': {detail!r}.", f"{param}.detail")
            image["detail"] = detail
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if part.get("file_data") is None:
            raise UnsupportedParameter(
                f"'{param}': files by file_id or file_url are not supported; send file_data.",
                param=f"{param}.file_data",
            )
        file = {"file_data": _string(part["file_data"], f"{param}.file_data", empty=False)}
        if part.get("filename") is not None:
            file["filename"] = _string(part["filename"], f"{param}.filename")
        return {"type": "file", "file": file}
    if kind in ("input_audio",):
        raise UnsupportedParameter(f"'{param}': audio input is not supported.", param=f"{param}.type")
    raise _fail(f"Invalid value for '{param}.type': {kind!r}.", f"{param}.type")


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise _fail(
            f"Invalid value for '{param}.role': {role!r}; one of user, assistant, system, developer.",
            f"{param}.role",
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = [
        _part(p, f"{param}.content[{i}]", role) for i, p in enumerate(_array(content, f"{param}.content"))
    ]
    refusals = [p["refusal"] for p in parts if p["type"] == "refusal"]
    parts = [p for p in parts if p["type"] != "refusal"]
    if role == "assistant":
        # an assistant turn goes back to chat models as plain text (what they produced)
        message: dict[str, Any] = {"role": role, "content": "".join(p.get("text", "") for p in parts)}
        if refusals:
            message["refusal"] = "".join(refusals)
        return message
    return {"role": role, "content": parts}


def _function_output(value: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return value
    return [_part(p, f"{param}[{i}]", "user") for i, p in enumerate(_array(value, param))]


def convert_input(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``input`` → (chat messages, the input items as the Responses API lists them)."""
    if isinstance(value, str):
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}
        return [{"role": "user", "content": value}], [item]
    items = _array(value, "input")
    if not items:
        raise _fail("Invalid 'input': empty array. Expected an array with at least one item.", "input")
    messages: list[dict[str, Any]] = []
    listed: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        param = f"input[{index}]"
        item = _object(raw, param)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call = {
                "id": _string(item.get("call_id"), f"{param}.call_id", empty=False),
                "type": "function",
                "function": {
                    "name": _string(item.get("name"), f"{param}.name", empty=False),
                    "arguments": _string(item.get("arguments"), f"{param}.arguments"),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and not last.get("refusal"):
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": _string(item.get("call_id"), f"{param}.call_id", empty=False),
                    "content": _function_output(item.get("output"), f"{param}.output"),
                }
            )
        elif kind == "reasoning":
            raise UnsupportedParameter(
                f"'{param}': reasoning items are not supported: the models behind this gateway are "
                "served through chat completions, which take no reasoning items. Leave them out.",
                param=f"{param}.type",
            )
        elif kind == "item_reference":
            raise UnsupportedParameter(
                f"'{param}': item references are not supported; use previous_response_id, or send the item.",
                param=f"{param}.type",
            )
        elif isinstance(kind, str):
            raise UnsupportedParameter(
                f"'{param}': input items of type {kind!r} are not supported; only message, "
                "function_call and function_call_output items are.",
                param=f"{param}.type",
            )
        else:
            raise _fail(f"Invalid type for '{param}.type': expected a string.", f"{param}.type")
        listed.append(item)
    return messages, listed


# -- tools, text format, the rest -------------------------------------------------------------------


def convert_tools(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Flat function tools → chat tools (and the tools as the response echoes them)."""
    chat: list[dict[str, Any]] = []
    echo: list[dict[str, Any]] = []
    for index, raw in enumerate(_array(value, "tools")):
        param = f"tools[{index}]"
        tool = _object(raw, param)
        kind = tool.get("type")
        if kind != "function":
            raise UnsupportedParameter(
                f"Tool type {kind!r} is not supported by this gateway: only function tools are "
                "(built-in tools such as web_search, file_search, computer_use, code_interpreter and "
                "mcp run inside OpenAI's platform).",
                param=f"{param}.type",
            )
        name = _string(tool.get("name"), f"{param}.name", empty=False)
        function: dict[str, Any] = {"name": name}
        if tool.get("description") is not None:
            function["description"] = _string(tool["description"], f"{param}.description")
        if tool.get("parameters") is not None:
            function["parameters"] = _object(tool["parameters"], f"{param}.parameters")
        if tool.get("strict") is not None:
            function["strict"] = _boolean(tool["strict"], f"{param}.strict")
        chat.append({"type": "function", "function": function})
        echo.append(
            {
                "type": "function",
                "name": name,
                "description": function.get("description"),
                "parameters": function.get("parameters"),
                "strict": function.get("strict", True),
            }
        )
    return chat, echo


def convert_tool_choice(value: Any) -> Any:
    if value in ("none", "auto", "required"):
        return value
    choice = _object(value, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        return {"type": "function", "function": {"name": _string(choice.get("name"), "tool_choice.name")}}
    if kind == "allowed_tools":
        mode = choice.get("mode")
        if mode not in ("auto", "required"):
            raise _fail(f"Invalid value for 'tool_choice.mode': {mode!r}.", "tool_choice.mode")
        allowed = []
        for index, raw in enumerate(_array(choice.get("tools"), "tool_choice.tools")):
            tool = _object(raw, f"tool_choice.tools[{index}]")
            if tool.get("type") != "function":
                raise UnsupportedParameter(
                    "Only function tools can be allowed.", param=f"tool_choice.tools[{index}].type"
                )
            name = _string(tool.get("name"), f"tool_choice.tools[{index}].name")
            allowed.append({"type": "function", "function": {"name": name}})
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": allowed}}
    raise UnsupportedParameter(
        f"tool_choice of type {kind!r} is not supported: only none, auto, required, a function or "
        "allowed_tools.",
        param="tool_choice.type",
    )


def convert_text(value: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``text`` → ``response_format`` (and ``verbosity``); returns the ``text`` the response echoes."""
    text = _object(value, "text")
    echo: dict[str, Any] = {"format": {"type": "text"}}
    fmt = text.get("format")
    if fmt is not None:
        fmt = _object(fmt, "text.format")
        kind = fmt.get("type")
        if kind == "json_schema":
            schema: dict[str, Any] = {
                "name": _string(fmt.get("name"), "text.format.name", empty=False),
                "schema": _object(fmt.get("schema"), "text.format.schema"),
            }
            if fmt.get("strict") is not None:
                schema["strict"] = _boolean(fmt["strict"], "text.format.strict")
            if fmt.get("description") is not None:
                schema["description"] = _string(fmt["description"], "text.format.description")
            params["response_format"] = {"type": "json_schema", "json_schema": schema}
            echo["format"] = {"type": "json_schema", **schema}
        elif kind == "json_object":
            params["response_format"] = {"type": "json_object"}
            echo["format"] = {"type": "json_object"}
        elif kind != "text":
            raise _fail(f"Invalid value for 'text.format.type': {kind!r}.", "text.format.type")
    if text.get("verbosity") is not None:
        verbosity = _string(text["verbosity"], "text.verbosity")
        if verbosity not in ("low", "medium", "high"):
            raise _fail(f"Invalid value for 'text.verbosity': {verbosity!r}.", "text.verbosity")
        params.setdefault("extra", {})["verbosity"] = verbosity
        echo["verbosity"] = verbosity
    return echo


def convert_metadata(value: Any) -> dict[str, str]:
    metadata = _object(value, "metadata")
    if len(metadata) > 16:
        raise _fail("Invalid 'metadata': at most 16 key-value pairs.", "metadata")
    for key, item in metadata.items():
        if len(key) > 64:
            raise _fail("Invalid 'metadata': keys are at most 64 characters.", "metadata")
        if len(_string(item, f"metadata.{key}")) > 512:
            raise _fail(f"Invalid 'metadata.{key}': values are at most 512 characters.", f"metadata.{key}")
    return dict(metadata)


def parse_request(raw: dict[str, Any]) -> ResponsesRequest:
    """A decoded JSON body → ``ResponsesRequest``, or an ``InvalidRequest`` naming the parameter."""
    for key in raw:
        if key not in KNOWN_FIELDS:
            raise InvalidRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    for key, reason in REFUSED_FIELDS.items():
        if raw.get(key) not in (None, False):
            raise UnsupportedParameter(f"'{key}': {reason}.", param=key)
    model = _string(raw.get("model"), "model", empty=False)
    if raw.get("input") is None:
        raise _fail("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    messages, input_items = convert_input(raw["input"])
    params: dict[str, Any] = {}
    echo: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "max_output_tokens": None}
    if raw.get("temperature") is not None:
        params["temperature"] = echo["temperature"] = _number(raw["temperature"], "temperature", 0, 2)
    if raw.get("top_p") is not None:
        params["top_p"] = echo["top_p"] = _number(raw["top_p"], "top_p", 0, 1)
    if raw.get("max_output_tokens") is not None:
        limit = _integer(raw["max_output_tokens"], "max_output_tokens", 16)
        params["max_completion_tokens"] = echo["max_output_tokens"] = limit
    tools: list[dict[str, Any]] = []
    if raw.get("tools") is not None:
        params["tools"], tools = convert_tools(raw["tools"])
        if not params["tools"]:
            del params["tools"]
    tool_choice: Any = "auto"
    if raw.get("tool_choice") is not None:
        params["tool_choice"] = convert_tool_choice(raw["tool_choice"])
        tool_choice = raw["tool_choice"]
    echo["parallel_tool_calls"] = True
    if raw.get("parallel_tool_calls") is not None:
        flag = _boolean(raw["parallel_tool_calls"], "parallel_tool_calls")
        echo["parallel_tool_calls"] = flag
        if "tools" in params:
            params["parallel_tool_calls"] = flag
    echo["text"] = (
        convert_text(raw["text"], params) if raw.get("text") is not None else {"format": {"type": "text"}}
    )
    echo["reasoning"] = {"effort": None, "summary": None}
    if raw.get("reasoning") is not None:
        reasoning = _object(raw["reasoning"], "reasoning")
        effort = reasoning.get("effort")
        if effort is not None:
            params.setdefault("extra", {})["reasoning_effort"] = _string(effort, "reasoning.effort")
            echo["reasoning"] = {"effort": effort, "summary": None}
    if raw.get("user") is not None:
        params["user"] = echo["user"] = _string(raw["user"], "user")
    for key in _PASSTHROUGH:
        if raw.get(key) is not None:
            params.setdefault("extra", {})[key] = echo[key] = _string(raw[key], key)
    if raw.get("top_logprobs") is not None:
        params["logprobs"] = True
        params["top_logprobs"] = echo["top_logprobs"] = _integer(raw["top_logprobs"], "top_logprobs", 0)
    if raw.get("include") is not None:
        for index, value in enumerate(_array(raw["include"], "include")):
            _string(value, f"include[{index}]")
    if raw.get("max_tool_calls") is not None:
        echo["max_tool_calls"] = _integer(raw["max_tool_calls"], "max_tool_calls", 1)
    if raw.get("stream_options") is not None:
        _object(raw["stream_options"], "stream_options")
    truncation = "disabled"
    if raw.get("truncation") is not None:
        truncation = _string(raw["truncation"], "truncation")
        if truncation not in ("auto", "disabled"):
            raise _fail(f"Invalid value for 'truncation': {truncation!r}.", "truncation")
    instructions = None if raw.get("instructions") is None else _string(raw["instructions"], "instructions")
    previous = raw.get("previous_response_id")
    return ResponsesRequest(
        model=model,
        messages=messages,
        input_items=input_items,
        params=params,
        instructions=instructions,
        tools=tools,
        tool_choice=tool_choice,
        stream=False if raw.get("stream") is None else _boolean(raw["stream"], "stream"),
        store=True if raw.get("store") is None else _boolean(raw["store"], "store"),
        previous_response_id=None
        if previous is None
        else _string(previous, "previous_response_id", empty=False),
        metadata={} if raw.get("metadata") is None else convert_metadata(raw["metadata"]),
        truncation=truncation,
        echo=echo,
    )
