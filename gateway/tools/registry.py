"""The set of server-side tools a process offers, and the one way to call them.

``ToolRegistry.call(name, arguments, call_id=...)`` is what the tool loop uses: it parses the
arguments (a JSON string as models send them, or a mapping), bounds the call in time, limits the
size of the result, counts it (``prism_tool_calls_total{tool,status}``, duration histogram), logs
one ``tool_call`` event and wraps it in an ``execute_tool {name}`` span. It never raises for a
failed call — the failure is a :class:`ToolCallResult` with an error code the model can read —
except for cancellation, which propagates (the sandbox kills its processes on the way out).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from gateway.config.tools import ToolsConfig
from gateway.observability import metrics, tracing
from gateway.tools.base import (
    ERROR_CODES,
    ProbedTool,
    Tool,
    ToolCallResult,
    ToolError,
    function_spec,
    render_content,
)

log = structlog.get_logger("prism.tools")


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool], *, config: ToolsConfig | None = None) -> None:
        self._config = config or ToolsConfig()
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self._tools[tool.name] = tool
        self._unavailable: dict[str, str] = {}
        self._label = metrics.LabelSet(self._tools)

    @property
    def names(self) -> list[str]:
        """The tools offered: registered and not found unavailable by :meth:`probe`."""
        return [name for name in self._tools if name not in self._unavailable]

    @property
    def unavailable(self) -> dict[str, str]:
        """Tools left out by :meth:`probe`, with the reason."""
        return dict(self._unavailable)

    def replace_group(self, prefix: str, tools: Iterable[Tool]) -> None:
        """Swap every tool whose name starts with ``prefix`` for ``tools`` (an MCP server's tools,
        after a (re)connect or ``tools/list_changed``). A name taken outside the group is skipped."""
        fresh = {tool.name: tool for tool in tools if tool.name.startswith(prefix)}
        kept = {name: tool for name, tool in self._tools.items() if not name.startswith(prefix)}
        for name in [name for name in fresh if name in kept]:
            log.warning("tool_name_taken", tool=name[:64])
            del fresh[name]
        self._tools = {**kept, **fresh}
        self._label = metrics.LabelSet(self._tools)
        metrics.zero_tool_series(fresh, ("ok", *ERROR_CODES))

    def label(self, name: str) -> str:
        """``name`` as a metric label: a registered tool's name, else ``other``."""
        return self._label(name)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name) if name not in self._unavailable else None

    def specs(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """OpenAI ``tools`` entries of the offered tools (or of those of ``names`` that are offered)."""
        wanted = self.names if names is None else [name for name in names if name in self.names]
        return [function_spec(self._tools[name]) for name in wanted]

    async def probe(self) -> dict[str, str]:
        """Check every tool that needs its environment (the sandbox) once, at start-up; a failing
        one is left out of :attr:`names` and answers ``unavailable`` with the reason. Returns the
        unavailable tools. Also creates the tool metric series at 0."""
        for name, tool in self._tools.items():
            if isinstance(tool, ProbedTool):
                try:
                    reason = await tool.probe()
                except Exception as exc:  # a probe that breaks leaves its tool out: fail closed
                    log.exception("tool_probe_failed", tool=name)
                    reason = f"the probe failed: {type(exc).__name__}: {str(exc)[:200]}"
                if reason is None:
                    self._unavailable.pop(name, None)
                else:
                    self._unavailable[name] = reason
                    log.warning("tool_unavailable", tool=name, reason=reason)
        metrics.zero_tool_series(self._tools, ("ok", *ERROR_CODES))
        return self.unavailable

    async def call(self, name: str, arguments: str | Mapping[str, Any], *, call_id: str) -> ToolCallResult:
        started = time.perf_counter()
        tool = self._tools.get(name)
        label = self._label(name)
        with tracing.tool_span(
            label if tool is not None else name[:64],
            call_id=call_id,
            description=tool.description if tool else None,
        ) as span:
            try:
                data = await self._run(tool, name, arguments)
            except ToolError as exc:
                payload: dict[str, Any] = {"error": {"code": exc.code, "message": exc.message, **exc.details}}
                error: ToolError | None = exc
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tool_internal_error", tool=label, call_id=call_id)
                error = ToolError("internal_error", f"the tool {name!r} failed unexpectedly")
                payload = {"error": {"code": error.code, "message": error.message}}
            else:
                payload, error = data, None
            content, truncated = render_content(payload, limit=self._config.max_result_chars)
            duration = time.perf_counter() - started
            result = ToolCallResult(
                call_id=call_id,
                name=name,
                ok=error is None,
                content=content,
                duration_s=duration,
                data=payload if error is None else {},
                error_code=error.code if error else None,
                error_message=error.message if error else None,
                truncated=truncated,
            )
            if error is not None:
                tracing.mark_tool_error(span, error.code, error.message)
        metrics.TOOL_CALLS.labels(tool=label, status=result.status).inc()
        metrics.TOOL_CALL_DURATION.labels(tool=label).observe(duration)
        log.info(
            "tool_call",
            tool=label,
            call_id=call_id,
            status=result.status,
            duration_ms=round(duration * 1000, 2),
            result_chars=len(content),
            truncated=truncated,
        )
        return result

    async def _run(self, tool: Tool | None, name: str, arguments: str | Mapping[str, Any]) -> dict[str, Any]:
        if tool is None:
            raise ToolError("unknown_tool", f"there is no tool named {name[:64]!r}")
        if name in self._unavailable:
            raise ToolError("unavailable", self._unavailable[name])
        parsed = self._parse(arguments)
        try:
            async with asyncio.timeout(self._config.timeout_s):
                return await tool.run(parsed)
        except TimeoutError:
            raise ToolError(
                "timeout", f"the tool ran longer than {self._config.timeout_s:g} s and was stopped"
            ) from None

    def _parse(self, arguments: str | Mapping[str, Any]) -> Mapping[str, Any]:
        if isinstance(arguments, Mapping):
            return arguments
        if len(arguments) > self._config.max_argument_chars:
            raise ToolError(
                "invalid_arguments",
                f"the arguments are longer than {self._config.max_argument_chars} characters",
            )
        try:
            value = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):
            raise ToolError("invalid_arguments", "the arguments are not valid JSON") from None
        if not isinstance(value, dict):
            raise ToolError("invalid_arguments", "the arguments must be a JSON object")
        return value
