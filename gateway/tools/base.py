"""What a server-side tool is, and what a call of one returns.

A tool is an object with a ``name``, a ``description``, JSON-schema ``parameters`` (the shape of
OpenAI's function tools) and an async ``run(arguments)`` that returns a JSON-able dict or raises
:class:`ToolError`. The registry (``registry.py``) adds everything a caller must not repeat:
argument parsing, the per-call timeout, the result size limit, metrics, logs and the span, and
turns every outcome into a :class:`ToolCallResult` that never raises.

Error codes (bounded: they are metric labels):

- ``invalid_arguments``  the arguments are not JSON, or do not match the schema or the tool's rules
- ``unknown_tool``       no tool of that name is offered
- ``unavailable``        the tool cannot run here (the sandbox cannot be set up); never run unsafely
- ``timeout``            the call ran past its time limit and was stopped
- ``limit_exceeded``     a resource limit stopped it (output size, CPU, memory, numbers too large)
- ``execution_error``    the tool ran and failed (division by zero, unknown time zone)
- ``internal_error``     a bug in the tool; logged with its traceback
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

ErrorCode = Literal[
    "invalid_arguments",
    "unknown_tool",
    "unavailable",
    "timeout",
    "limit_exceeded",
    "execution_error",
    "internal_error",
]
ERROR_CODES: tuple[ErrorCode, ...] = (
    "invalid_arguments",
    "unknown_tool",
    "unavailable",
    "timeout",
    "limit_exceeded",
    "execution_error",
    "internal_error",
)


class ToolError(Exception):
    """A structured failure of a tool call: a bounded ``code``, a message for the model and the
    operator, and optional ``details`` (JSON-able) such as the partial output of a killed run."""

    def __init__(self, code: ErrorCode, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


@runtime_checkable
class Tool(Protocol):
    """A server-side tool. ``run`` may raise :class:`ToolError`; anything else is a bug."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]: ...

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]: ...


@runtime_checkable
class ProbedTool(Tool, Protocol):
    """A tool that needs a check of its environment before it is offered (the sandbox)."""

    async def probe(self) -> str | None:
        """``None`` when the tool can run here, else why not (a sentence for the operator)."""
        ...


def function_spec(tool: Tool) -> dict[str, Any]:
    """The tool in OpenAI's ``tools`` shape: ``{"type": "function", "function": {...}}``."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": dict(tool.parameters)},
    }


_M = TypeVar("_M", bound=BaseModel)


def parse_arguments(model: type[_M], arguments: Mapping[str, Any]) -> _M:
    """Validate ``arguments`` with a pydantic model; a mismatch is ``invalid_arguments`` naming the
    fields (never echoing their values)."""
    try:
        return model.model_validate(dict(arguments))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'arguments'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ToolError("invalid_arguments", problems) from None


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema as a function tool's ``parameters`` (no pydantic ``title`` noise)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


@dataclass(frozen=True, slots=True)
class ToolCallResult:
    """The outcome of one call, as the tool loop needs it: ``content`` is the text of the ``tool``
    message for the model (JSON, at most the configured size), ``data``/``error`` the structure."""

    call_id: str
    name: str
    ok: bool
    content: str
    duration_s: float
    data: dict[str, Any] = field(default_factory=dict)
    error_code: ErrorCode | None = None
    error_message: str | None = None
    truncated: bool = False

    @property
    def status(self) -> str:
        """``ok`` or the error code: the metric label and the log field."""
        return "ok" if self.ok else (self.error_code or "internal_error")


def render_content(payload: Mapping[str, Any], *, limit: int) -> tuple[str, bool]:
    """``payload`` as compact JSON for the model, cut to ``limit`` characters when longer.

    A cut result stays valid JSON: ``{"truncated": true, "partial": "<the first characters>"}``."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    if len(text) <= limit:
        return text, False
    head = text[: max(0, limit - 64)]
    while True:
        cut = json.dumps({"truncated": True, "partial": head}, ensure_ascii=False, separators=(",", ":"))
        if len(cut) <= limit or not head:
            return cut, True
        head = head[: len(head) - (len(cut) - limit) - 1]
