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

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequest, UnsupportedParameter
from gateway.schemas.responses_input import (
    convert_input,
    expect_array,
    expect_boolean,
    expect_integer,
    expect_number,
    expect_object,
    expect_string,
    invalid,
)

KNOWN_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "max_output_tokens", "temperature", "top_p", "text", "metadata", "store",
        "previous_response_id", "stream", "stream_options", "user", "safety_identifier",
        "prompt_cache_key", "prompt_cache_retention", "include", "truncation", "reasoning",
        "service_tier", "top_logprobs", "max_tool_calls", "background", "conversation", "prompt",
        "context_management", "prompt_cache_options", "background_options", "access_programs",
        "image", "moderation",
    }
)  # fmt: skip
REFUSED_FIELDS = {
    "background": "background mode is not supported by this gateway; send the request without it",
    "conversation": "conversation objects are not supported; chain responses with previous_response_id",
    "prompt": "stored prompt templates are not supported; send instructions and input instead",
    "background_options": "background mode is not supported by this gateway",
    "context_management": "server-side context management is not supported",
    "access_programs": "access programs are not supported by this gateway",
    "image": "image generation options are not supported: the models behind this gateway answer text",
    "moderation": "moderation runs in the gateway's own guardrails (docs/guardrails.md), not per request",
}
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string"},
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "instructions": {"type": "string"},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
        "max_output_tokens": {"type": "integer"},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "text": {"type": "object"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "store": {"type": "boolean"},
        "stream": {"type": "boolean"},
        "previous_response_id": {"type": "string"},
    },
}
"""The body's outline for OpenAPI (the checks above are the contract)."""
_PASSTHROUGH = ("service_tier", "prompt_cache_key", "prompt_cache_retention", "safety_identifier")


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


# -- tools, text format, the rest -------------------------------------------------------------------


def convert_tools(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Flat function tools → chat tools (and the tools as the response echoes them)."""
    chat: list[dict[str, Any]] = []
    echo: list[dict[str, Any]] = []
    for index, raw in enumerate(expect_array(value, "tools")):
        param = f"tools[{index}]"
        tool = expect_object(raw, param)
        kind = tool.get("type")
        if kind != "function":
            raise UnsupportedParameter(
                f"Tool type {kind!r} is not supported by this gateway: only function tools are "
                "(built-in tools such as web_search, file_search, computer_use, code_interpreter and "
                "mcp run inside OpenAI's platform).",
                param=f"{param}.type",
            )
        name = expect_string(tool.get("name"), f"{param}.name", empty=False)
        function: dict[str, Any] = {"name": name}
        if tool.get("description") is not None:
            function["description"] = expect_string(tool["description"], f"{param}.description")
        if tool.get("parameters") is not None:
            function["parameters"] = expect_object(tool["parameters"], f"{param}.parameters")
        if tool.get("strict") is not None:
            function["strict"] = expect_boolean(tool["strict"], f"{param}.strict")
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
    choice = expect_object(value, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        return {
            "type": "function",
            "function": {"name": expect_string(choice.get("name"), "tool_choice.name")},
        }
    if kind == "allowed_tools":
        mode = choice.get("mode")
        if mode not in ("auto", "required"):
            raise invalid(f"Invalid value for 'tool_choice.mode': {mode!r}.", "tool_choice.mode")
        allowed = []
        for index, raw in enumerate(expect_array(choice.get("tools"), "tool_choice.tools")):
            tool = expect_object(raw, f"tool_choice.tools[{index}]")
            if tool.get("type") != "function":
                raise UnsupportedParameter(
                    "Only function tools can be allowed.", param=f"tool_choice.tools[{index}].type"
                )
            name = expect_string(tool.get("name"), f"tool_choice.tools[{index}].name")
            allowed.append({"type": "function", "function": {"name": name}})
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": allowed}}
    raise UnsupportedParameter(
        f"tool_choice of type {kind!r} is not supported: only none, auto, required, a function or "
        "allowed_tools.",
        param="tool_choice.type",
    )


def convert_text(value: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``text`` → ``response_format`` (and ``verbosity``); returns the ``text`` the response echoes."""
    text = expect_object(value, "text")
    echo: dict[str, Any] = {"format": {"type": "text"}}
    fmt = text.get("format")
    if fmt is not None:
        fmt = expect_object(fmt, "text.format")
        kind = fmt.get("type")
        if kind == "json_schema":
            schema: dict[str, Any] = {
                "name": expect_string(fmt.get("name"), "text.format.name", empty=False),
                "schema": expect_object(fmt.get("schema"), "text.format.schema"),
            }
            if fmt.get("strict") is not None:
                schema["strict"] = expect_boolean(fmt["strict"], "text.format.strict")
            if fmt.get("description") is not None:
                schema["description"] = expect_string(fmt["description"], "text.format.description")
            params["response_format"] = {"type": "json_schema", "json_schema": schema}
            echo["format"] = {"type": "json_schema", **schema}
        elif kind == "json_object":
            params["response_format"] = {"type": "json_object"}
            echo["format"] = {"type": "json_object"}
        elif kind != "text":
            raise invalid(f"Invalid value for 'text.format.type': {kind!r}.", "text.format.type")
    if text.get("verbosity") is not None:
        verbosity = expect_string(text["verbosity"], "text.verbosity")
        if verbosity not in ("low", "medium", "high"):
            raise invalid(f"Invalid value for 'text.verbosity': {verbosity!r}.", "text.verbosity")
        params.setdefault("extra", {})["verbosity"] = verbosity
        echo["verbosity"] = verbosity
    return echo


def convert_metadata(value: Any) -> dict[str, str]:
    metadata = expect_object(value, "metadata")
    if len(metadata) > 16:
        raise invalid("Invalid 'metadata': at most 16 key-value pairs.", "metadata")
    for key, item in metadata.items():
        if len(key) > 64:
            raise invalid("Invalid 'metadata': keys are at most 64 characters.", "metadata")
        if len(expect_string(item, f"metadata.{key}")) > 512:
            raise invalid(f"Invalid 'metadata.{key}': values are at most 512 characters.", f"metadata.{key}")
    return dict(metadata)


def parse_request(raw: dict[str, Any]) -> ResponsesRequest:
    """A decoded JSON body → ``ResponsesRequest``, or an ``InvalidRequest`` naming the parameter."""
    for key in raw:
        if key not in KNOWN_FIELDS:
            raise InvalidRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    for key, reason in REFUSED_FIELDS.items():
        if raw.get(key) not in (None, False):
            raise UnsupportedParameter(f"'{key}': {reason}.", param=key)
    model = expect_string(raw.get("model"), "model", empty=False)
    if raw.get("input") is None:
        raise invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    messages, input_items = convert_input(raw["input"])
    params: dict[str, Any] = {}
    echo: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "max_output_tokens": None}
    if raw.get("temperature") is not None:
        params["temperature"] = echo["temperature"] = expect_number(raw["temperature"], "temperature", 0, 2)
    if raw.get("top_p") is not None:
        params["top_p"] = echo["top_p"] = expect_number(raw["top_p"], "top_p", 0, 1)
    if raw.get("max_output_tokens") is not None:
        limit = expect_integer(raw["max_output_tokens"], "max_output_tokens", 16)
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
        flag = expect_boolean(raw["parallel_tool_calls"], "parallel_tool_calls")
        echo["parallel_tool_calls"] = flag
        if "tools" in params:
            params["parallel_tool_calls"] = flag
    echo["text"] = (
        convert_text(raw["text"], params) if raw.get("text") is not None else {"format": {"type": "text"}}
    )
    echo["reasoning"] = {"effort": None, "summary": None}
    if raw.get("reasoning") is not None:
        reasoning = expect_object(raw["reasoning"], "reasoning")
        effort = reasoning.get("effort")
        if effort is not None:
            params.setdefault("extra", {})["reasoning_effort"] = expect_string(effort, "reasoning.effort")
            echo["reasoning"] = {"effort": effort, "summary": None}
    if raw.get("user") is not None:
        params["user"] = echo["user"] = expect_string(raw["user"], "user")
    for key in _PASSTHROUGH:
        if raw.get(key) is not None:
            params.setdefault("extra", {})[key] = echo[key] = expect_string(raw[key], key)
    if raw.get("top_logprobs") is not None:
        params["logprobs"] = True
        params["top_logprobs"] = echo["top_logprobs"] = expect_integer(raw["top_logprobs"], "top_logprobs", 0)
    if raw.get("include") is not None:
        for index, value in enumerate(expect_array(raw["include"], "include")):
            expect_string(value, f"include[{index}]")
    if raw.get("max_tool_calls") is not None:
        echo["max_tool_calls"] = expect_integer(raw["max_tool_calls"], "max_tool_calls", 1)
    if raw.get("stream_options") is not None:
        expect_object(raw["stream_options"], "stream_options")
    truncation = "disabled"
    if raw.get("truncation") is not None:
        truncation = expect_string(raw["truncation"], "truncation")
        if truncation not in ("auto", "disabled"):
            raise invalid(f"Invalid value for 'truncation': {truncation!r}.", "truncation")
    instructions = (
        None if raw.get("instructions") is None else expect_string(raw["instructions"], "instructions")
    )
    previous = raw.get("previous_response_id")
    return ResponsesRequest(
        model=model,
        messages=messages,
        input_items=input_items,
        params=params,
        instructions=instructions,
        tools=tools,
        tool_choice=tool_choice,
        stream=False if raw.get("stream") is None else expect_boolean(raw["stream"], "stream"),
        store=True if raw.get("store") is None else expect_boolean(raw["store"], "store"),
        previous_response_id=None
        if previous is None
        else expect_string(previous, "previous_response_id", empty=False),
        metadata={} if raw.get("metadata") is None else convert_metadata(raw["metadata"]),
        truncation=truncation,
        echo=echo,
    )
