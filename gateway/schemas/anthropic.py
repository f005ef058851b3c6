"""Anthropic Messages API wire models (request side) and Anthropic's error envelope.

Like the OpenAI models, requests are validated here but forwarded as the client's own dicts, so
fields not modelled (new block types, beta parameters) are not lost. Content blocks are checked by
``gateway/services/messages_codec.py`` while it translates them, with the same error messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class MessageParam(_Open):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class ToolParam(_Open):
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_-]+$")]
    type: str | None = None
    """Absent or ``custom`` for a client tool; a versioned name (``bash_20250124``, …) for a server tool."""
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(_Open):
    user_id: Annotated[str, Field(max_length=256)] | None = None


class MessagesRequest(_Open):
    """The body of ``POST /v1/messages``. ``max_tokens`` is required, as upstream."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)]
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    tools: Annotated[list[ToolParam], Field(max_length=256)] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    thinking: dict[str, Any] | None = None


class CountTokensRequest(_Open):
    """The body of ``POST /v1/messages/count_tokens``: a Messages request without ``max_tokens``."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    tools: Annotated[list[ToolParam], Field(max_length=256)] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = None


ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
]

_TYPES: dict[int, ErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(status: int) -> ErrorType:
    """Anthropic's error ``type`` for an HTTP status (5xx other than 503/529: ``api_error``)."""
    return _TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_body(status: int, message: str, *, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(status), "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_bytes_from_openai(status: int, openai_body: bytes) -> bytes:
    """An error the middleware rendered in OpenAI's envelope, in Anthropic's (same status and message)."""
    try:
        message = str(orjson.loads(openai_body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = "Internal server error"
    return orjson.dumps(error_body(status, message))


def model_info(name: str, created: int) -> dict[str, Any]:
    """A configured model in the shape of Anthropic's ``GET /v1/models`` (for clients that send
    ``anthropic-version``)."""
    stamp = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": name, "display_name": name, "created_at": stamp}


def model_page(names: list[str], created: int) -> dict[str, Any]:
    data = [model_info(name, created) for name in names]
    return {
        "data": data,
        "has_more": False,
        "first_id": names[0] if names else None,
        "last_id": names[-1] if names else None,
    }


def is_messages_path(path: str) -> bool:
    """``/v1/messages`` and below: the routes whose errors use Anthropic's envelope."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")
