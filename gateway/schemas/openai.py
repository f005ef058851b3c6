"""OpenAI Chat Completions wire models (request side) and chunk/response builders.

Requests are validated with pydantic but forwarded as the client's own dicts, so
fields we do not model (vendor extensions) are not lost; responses are plain
dicts serialised with orjson, which is faster than model round trips.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str


class ToolCallFunction(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str
    arguments: str


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: Annotated[str, Field(min_length=1, max_length=70, pattern=r"^(prism\.)?[a-zA-Z0-9_-]{1,64}$")]
    """``prism.<tool>`` names a server tool (``gateway/tools/access.py``)."""
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["function"]
    function: FunctionDef


class McpTool(BaseModel):
    """OpenAI's / LiteLLM's MCP tool entry: the tools of one MCP server Prism is connected to."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["mcp"]
    server_label: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    allowed_tools: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=128)] | None
    ) = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(BaseModel):
    """The request body of ``POST /v1/chat/completions``. Unknown fields are kept (``extra``)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=16)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    seed: int | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    tools: (
        Annotated[list[Annotated[Tool | McpTool, Field(discriminator="type")]], Field(max_length=128)] | None
    ) = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    metadata: dict[str, str] | None = None


SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "n",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
)
"""Request fields that are forwarded to providers as generation parameters."""

GATEWAY_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "metadata"})


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def chat_completion(
    *,
    request_id: str,
    model: str,
    choices: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    created: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id(request_id),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": choices,
        "system_fingerprint": "prism",
    }
    if usage is not None:
        body["usage"] = usage
    return body


def chunk(
    *,
    request_id: str,
    model: str,
    created: int,
    choices: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``. With ``include_usage`` every chunk carries ``usage: null``
    except the last one, whose ``choices`` is empty (as OpenAI sends it)."""
    body: dict[str, Any] = {
        "id": completion_id(request_id),
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "prism",
        "choices": choices,
    }
    if with_usage_field or usage is not None:
        body["usage"] = usage
    return body
