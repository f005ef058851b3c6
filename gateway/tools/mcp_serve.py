"""Prism as an MCP server: the tools a principal may use, served on ``/mcp`` (docs/mcp.md).

The protocol is the ``mcp`` SDK's low-level :class:`~mcp.server.lowlevel.Server` behind its
:class:`~mcp.server.streamable_http_manager.StreamableHTTPSessionManager` in **stateless** mode
with JSON responses: every POST is a whole exchange, no ``Mcp-Session-Id`` is kept, so any worker
of any replica answers any request (no sticky sessions behind nginx or a Kubernetes Service) and a
restart loses nothing. The price: no server-to-client messages (no ``tools/list_changed`` pushed to
clients, no progress or elicitation); a client sees a changed tool set on its next ``tools/list``.

Authentication happens before the SDK sees the request (``gateway/api/mcp.py``), which leaves the
:class:`Principal` in the ASGI scope under :data:`PRINCIPAL_KEY`; the handlers read it from the
request the SDK hands them. Each ``tools/call`` runs through :meth:`ToolRegistry.call` (timeout,
size limit, ``execute_tool`` span, ``prism_tool_calls_total``), counts one request against the
principal's RPM quota, and is audited: one ``mcp_server_call`` log event and
``prism_mcp_server_calls_total{tool,status}``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
import uuid
from collections.abc import Callable
from typing import Any

import mcp.types as mcp_types
import structlog
from mcp import MCPError
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INVALID_PARAMS, INVALID_REQUEST
from opentelemetry import context as otel_context

from gateway.cache import QuotaLimiter
from gateway.config.routing import RoutingConfig
from gateway.config.tools import ToolsConfig
from gateway.errors import GatewayError
from gateway.observability import metrics
from gateway.security.principal import Principal
from gateway.tools.base import ERROR_CODES
from gateway.tools.caller import acting_as
from gateway.tools.registry import ToolRegistry

log = structlog.get_logger("prism.mcp_server")

PRINCIPAL_KEY = "prism.principal"
"""Where ``gateway/api/mcp.py`` leaves the authenticated principal in the ASGI scope."""
TRACE_CONTEXT_KEY = "prism.trace_context"
"""The request's OpenTelemetry context, left in the scope next to the principal: the SDK runs the
handlers in its own task group (started in the lifespan), so the request's span is not current
there; attaching this context makes a call's ``execute_tool`` span a child of ``POST /mcp``."""
RATE_LIMITED = -32029
"""JSON-RPC error code of a tool call refused by the principal's quota (implementation-defined)."""


def tools_for_principal(principal: Principal, tools: ToolsConfig, registry: ToolRegistry) -> list[str]:
    """The registry's tools this principal may use on ``/mcp``: the tool loop's policy (the key's and
    the user's ``allowed_tools``, ``Principal.may_call``, gateway/tools/access.py), less the tools in
    ``tools.mcp_endpoint.admin_only`` for a principal that is not an admin."""
    names = [name for name in registry.names if principal.may_call(name)]
    if principal.is_admin:
        return names
    hidden = tools.mcp_endpoint.admin_only
    return [name for name in names if not any(fnmatch.fnmatchcase(name, pattern) for pattern in hidden)]


class McpEndpoint:
    """The MCP server behind ``/mcp``; started and closed once, in the lifespan."""

    def __init__(
        self,
        *,
        registry: ToolRegistry,
        config: Callable[[], RoutingConfig],
        quotas: QuotaLimiter | None,
        version: str = "0.1.0",
    ) -> None:
        self._registry = registry
        self._config = config
        self._quotas = quotas
        self.server: Server[Any] = Server(
            "prism",
            version=version,
            instructions="Tools of the Prism gateway, governed by the operator (docs/mcp.md).",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self.manager = StreamableHTTPSessionManager(app=self.server, json_response=True, stateless=True)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        for status in ("ok", "forbidden", "rate_limited", *ERROR_CODES):
            metrics.MCP_SERVER_CALLS.labels(tool=metrics.OTHER, status=status)

    async def start(self) -> None:
        """Run the SDK's session manager (an anyio task group) in a task of its own, so that it is
        entered and left in one task whoever starts and stops the app (the lifespan may close in
        another task than it opened in, as test fixtures do)."""
        ready = asyncio.Event()
        self._stop = asyncio.Event()

        async def serve() -> None:
            async with self.manager.run():
                ready.set()
                await self._stop.wait()

        self._task = asyncio.get_running_loop().create_task(serve(), name="mcp-endpoint")
        started = asyncio.ensure_future(ready.wait())
        await asyncio.wait({started, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            started.cancel()
            await self._task  # raises what stopped it

    async def aclose(self) -> None:
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None

    def allowed(self, principal: Principal) -> list[str]:
        return tools_for_principal(principal, self._config().tools, self._registry)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        principal = _principal(ctx)
        tools = []
        for name in self.allowed(principal):
            tool = self._registry.get(name)
            if tool is not None:
                schema = dict(tool.parameters)
                tools.append(mcp_types.Tool(name=name, description=tool.description, input_schema=schema))
        return mcp_types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        principal = _principal(ctx)
        name = params.name
        call_id = f"mcp_{uuid.uuid4().hex[:24]}"
        started = time.perf_counter()
        label = self._registry.label(name)
        if name not in self.allowed(principal):
            # the same answer for a tool that does not exist and one this principal may not use
            self._audit(principal, label, call_id, "forbidden", started)
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {name[:64]}")
        ticket = None
        if self._quotas is not None:
            quota_config = self._config().quotas
            try:
                ticket = await self._quotas.check_and_reserve(
                    request_id=call_id,
                    principal=principal,
                    estimated_tokens=0,
                    estimated_cost_usd=0.0,
                    limits=self._quotas.limits_for(principal, config=quota_config),
                    config=quota_config,
                )
            except GatewayError as exc:
                self._audit(principal, label, call_id, "rate_limited", started)
                retry = exc.headers.get("retry-after") or exc.headers.get("Retry-After")
                data = {"retry_after_s": retry} if retry else None
                raise MCPError(RATE_LIMITED, exc.message, data) from None
        parent = _scope(ctx).get(TRACE_CONTEXT_KEY)
        token = otel_context.attach(parent) if isinstance(parent, otel_context.Context) else None
        try:
            with acting_as(principal, call_id):  # tools such as search act as the caller
                result = await self._registry.call(name, params.arguments or {}, call_id=call_id)
        finally:
            if token is not None:
                otel_context.detach(token)
            if ticket is not None and self._quotas is not None:
                await self._quotas.settle_soon(ticket, actual_tokens=0, actual_cost_usd=0.0)
        self._audit(principal, label, call_id, result.status, started)
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=result.content)],
            structured_content=result.data if result.ok and result.data else None,
            is_error=not result.ok,
        )

    @staticmethod
    def _audit(principal: Principal, tool: str, call_id: str, status: str, started: float) -> None:
        metrics.MCP_SERVER_CALLS.labels(tool=tool, status=status).inc()
        log.info(
            "mcp_server_call",
            tool=tool,
            call_id=call_id,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            role=str(principal.role),
        )


def _scope(ctx: ServerRequestContext[Any]) -> dict[str, Any]:
    """The ASGI scope of the HTTP request that carried this message (the SDK hands the request)."""
    scope = getattr(ctx.request, "scope", None)
    return scope if isinstance(scope, dict) else {}


def _principal(ctx: ServerRequestContext[Any]) -> Principal:
    principal = _scope(ctx).get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):  # the endpoint is only reachable through the auth wrapper
        raise MCPError(INVALID_REQUEST, "Not authenticated")
    return principal
