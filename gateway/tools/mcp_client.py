"""Prism as an MCP client: the tools of the MCP servers in ``tools.mcp_servers``, offered through the
:class:`~gateway.tools.registry.ToolRegistry` like the built-ins (docs/mcp.md).

One :class:`McpConnection` per server keeps one session open with the official ``mcp`` SDK
(``ClientSession`` over ``stdio_client`` or ``streamable_http_client``) inside a supervised
:class:`~gateway.background.BackgroundWorker` round: connect, ``initialize``, ``tools/list``, then
watch — a ``notifications/tools/list_changed`` lists the tools again, a ping every
``ping_interval_s`` checks the server, and a failed ping or a closed connection ends the round; the
worker reconnects with exponential back-off (``0.1 s`` doubling to ``reconnect_max_s``). While a
server is down its tools are out of the registry (a model is not offered what cannot run).

Tools are named ``mcp__<server>__<tool>`` (``[A-Za-z0-9_-]``, at most 64 characters: what OpenAI and
Anthropic accept as function names; ``.`` is not). Each call is bounded by the server's
``timeout_s`` and its text by ``max_result_chars``; SDK errors become :class:`ToolError` codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Literal

import anyio
import httpx2
import mcp.types as mcp_types
import structlog
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CONNECTION_CLOSED, INVALID_PARAMS, METHOD_NOT_FOUND, REQUEST_TIMEOUT

from gateway.background import BackgroundWorker, Backoff
from gateway.config.tools import McpServerConfig
from gateway.observability import metrics
from gateway.tools.access import mcp_tool_name
from gateway.tools.base import Tool, ToolError
from gateway.tools.registry import ToolRegistry

log = structlog.get_logger("prism.mcp")

State = Literal["connecting", "connected", "down", "closed"]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME = 64
MAX_PAGES = 20
CLIENT_INFO = mcp_types.Implementation(name="prism", version="0.1.0")


def tool_prefix(server: str) -> str:
    return mcp_tool_name(server, "")  # one naming rule with the access policy


def prism_name(server: str, remote: str) -> str | None:
    """The registry name of a server's tool, or ``None`` when it cannot be made unique and valid."""
    name = tool_prefix(server) + _UNSAFE.sub("_", remote)
    return name if len(name) <= MAX_NAME else None


class McpServerTool:
    """One tool of an MCP server, as the registry sees it; ``run`` calls the server."""

    def __init__(self, connection: McpConnection, remote: mcp_types.Tool, name: str) -> None:
        self.name = name
        self.remote_name = remote.name
        self.description = (remote.description or remote.title or remote.name)[:2000]
        self.parameters: Mapping[str, Any] = dict(remote.input_schema or {"type": "object"})
        self._connection = connection

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return await self._connection.call(self.remote_name, arguments)


class McpConnection:
    """One configured MCP server: its session, its tools in the registry, its health."""

    def __init__(self, config: McpServerConfig, registry: ToolRegistry, *, env: Mapping[str, str]) -> None:
        self.config = config
        self._registry = registry
        self._env = env
        self._session: ClientSession | None = None
        self.state: State = "down"
        self.last_error: str | None = None
        self.connected_at: float | None = None
        self.connects = 0
        self.tools: list[str] = []
        self._attention = asyncio.Event()
        self._refresh_wanted = False
        self._broken: str | None = None
        self._closing = False
        self._log = log.bind(mcp_server=config.name)
        self._worker = BackgroundWorker(
            "mcp_client",
            self._serve,
            interval_s=0.0,
            backoff=Backoff(base_s=0.1, max_s=config.reconnect_max_s),
            stop_timeout_s=0,
        )
        metrics.MCP_CLIENT_UP.labels(server=config.name).set(0)
        metrics.MCP_CLIENT_TOOLS.labels(server=config.name).set(0)
        for outcome in ("ok", "failed"):
            metrics.MCP_CLIENT_CONNECTS.labels(server=config.name, outcome=outcome)
        metrics.MCP_CLIENT_REFRESHES.labels(server=config.name)

    @property
    def name(self) -> str:
        return self.config.name

    def start(self) -> None:
        self._worker.start()

    async def aclose(self) -> None:
        self._closing = True
        self._attention.set()
        await self._worker.aclose(timeout_s=5.0)
        self._drop_tools()
        self.state = "closed"

    def health(self) -> dict[str, Any]:
        return {
            "label": self.config.display,
            "transport": self.config.transport,
            "state": self.state,
            "tools": len(self.tools),
            "connects": self.connects,
            "last_error": self.last_error,
        }

    async def call(self, remote: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        session = self._session
        if session is None:
            raise ToolError("unavailable", f"the MCP server {self.config.display!r} is not connected")
        timeout = self.config.timeout_s
        try:
            with anyio.fail_after(timeout + 1.0):  # the SDK's read timeout answers first
                result = await session.call_tool(remote, dict(arguments), read_timeout_seconds=timeout)
        except TimeoutError:
            raise ToolError("timeout", f"the MCP tool ran longer than {timeout:g} s") from None
        except MCPError as exc:
            raise self._error(exc) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, httpx2.HTTPError, OSError) as exc:
            self.mark_broken(type(exc).__name__)
            raise ToolError(
                "unavailable", f"the MCP server {self.config.display!r} is not reachable"
            ) from None
        except RuntimeError as exc:  # an InputRequiredResult: Prism cannot answer elicitations
            raise ToolError("execution_error", f"the MCP tool asked for input: {str(exc)[:200]}") from None
        return self._payload(result)

    def mark_broken(self, reason: str) -> None:
        """End the session round: the worker reconnects with back-off."""
        if self._broken is None:
            self._broken = reason
        self._attention.set()

    def _error(self, exc: MCPError) -> ToolError:
        message = exc.message[:500]
        if exc.code == REQUEST_TIMEOUT:
            return ToolError("timeout", f"the MCP tool ran longer than {self.config.timeout_s:g} s")
        if exc.code == CONNECTION_CLOSED:
            self.mark_broken("connection closed")
            return ToolError("unavailable", f"the MCP server {self.config.display!r} closed the connection")
        if exc.code == INVALID_PARAMS:
            return ToolError("invalid_arguments", message)
        if exc.code == METHOD_NOT_FOUND:
            return ToolError("unknown_tool", message)
        return ToolError("execution_error", f"the MCP server answered an error: {message}")

    def _payload(self, result: mcp_types.CallToolResult) -> dict[str, Any]:
        limit = self.config.max_result_chars
        texts: list[str] = []
        others: list[dict[str, Any]] = []
        for block in result.content:
            if isinstance(block, mcp_types.TextContent):
                texts.append(block.text)
            else:
                others.append({"type": getattr(block, "type", "other"), "omitted": True})
        text = "\n".join(texts)
        if result.is_error:
            raise ToolError("execution_error", text[:2000] or "the MCP tool failed")
        payload: dict[str, Any] = {}
        truncated = len(text) > limit
        if texts:
            payload["text"] = text[:limit]
        if result.structured_content is not None:
            structured = json.dumps(result.structured_content, default=str)
            if len(structured) <= limit:
                payload["structured"] = result.structured_content
            else:
                truncated = True
        if others:
            payload["other_content"] = others[:20]
        if truncated:
            payload["truncated"] = True
        return payload

    async def _serve(self) -> bool:
        """One session: connect, list, watch until closing (True) or broken (False → back-off)."""
        self.state = "connecting"
        self._broken = None
        self._refresh_wanted = False
        self._attention = asyncio.Event()
        started = time.perf_counter()
        connected = False
        try:
            async with self._open() as session:
                await session.initialize()
                await self._refresh(session)
                connected = True
                self._on_connected(session, time.perf_counter() - started)
                await self._watch(session)
            return True
        except Exception as exc:
            reason = _describe(exc)
            self.last_error = reason
            if connected:
                self._log.warning("mcp_server_disconnected", reason=reason)
            else:
                metrics.MCP_CLIENT_CONNECTS.labels(server=self.name, outcome="failed").inc()
                self._log.warning(
                    "mcp_server_connect_failed", reason=reason, failures=self._worker.failures + 1
                )
            return False
        finally:
            self._session = None
            self._drop_tools()
            if not self._closing:
                self.state = "down"

    def _on_connected(self, session: ClientSession, seconds: float) -> None:
        self._session = session
        self.state = "connected"
        self.connects += 1
        self.connected_at = time.time()
        self.last_error = None
        self._worker.failures = 0  # a later drop starts its back-off from the base again
        metrics.MCP_CLIENT_UP.labels(server=self.name).set(1)
        metrics.MCP_CLIENT_CONNECTS.labels(server=self.name, outcome="ok").inc()
        info = session.server_info
        self._log.info(
            "mcp_server_connected",
            tools=len(self.tools),
            connect_ms=round(seconds * 1000, 1),
            server_name=info.name if info else None,
            server_version=info.version if info else None,
        )

    async def _watch(self, session: ClientSession) -> None:
        while not self._closing:
            with anyio.move_on_after(self.config.ping_interval_s) as waited:
                await self._attention.wait()
            self._attention = asyncio.Event()
            if self._closing:
                return
            if self._broken is not None:
                raise ConnectionError(self._broken)
            if self._refresh_wanted:
                self._refresh_wanted = False
                await self._refresh(session)
                metrics.MCP_CLIENT_REFRESHES.labels(server=self.name).inc()
            elif waited.cancelled_caught:
                await session.send_ping()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[ClientSession]:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            if config.transport == "stdio":
                assert config.command is not None
                params = StdioServerParameters(
                    command=config.command,
                    args=list(config.args),
                    env=self._variables(config.env),
                    cwd=config.cwd,
                )
                read, write = await stack.enter_async_context(stdio_client(params, errlog=sys.stderr))
            else:
                assert config.url is not None
                client = httpx2.AsyncClient(
                    headers=self._variables(config.headers),
                    timeout=httpx2.Timeout(config.connect_timeout_s, read=max(300.0, config.timeout_s)),
                )
                await stack.enter_async_context(client)
                read, write = await stack.enter_async_context(
                    streamable_http_client(config.url, http_client=client)
                )
            session = ClientSession(
                read,
                write,
                read_timeout_seconds=config.connect_timeout_s,
                message_handler=self._on_message,
                client_info=CLIENT_INFO,
            )
            yield await stack.enter_async_context(session)

    def _variables(self, mapping: Mapping[str, str]) -> dict[str, str]:
        missing = sorted(variable for variable in mapping.values() if variable not in self._env)
        if missing:
            raise LookupError(f"the environment variable {missing[0]} is not set")
        return {key: self._env[variable] for key, variable in mapping.items()}

    async def _on_message(self, message: mcp_types.ServerNotification | Exception) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._refresh_wanted = True
            self._attention.set()
        elif isinstance(message, Exception):
            self._log.warning("mcp_transport_error", error=type(message).__name__)

    async def _refresh(self, session: ClientSession) -> None:
        remote: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            remote.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        tools = list(self._select(remote))
        self._registry.replace_group(tool_prefix(self.name), tools)
        before = set(self.tools)
        self.tools = [tool.name for tool in tools]
        metrics.MCP_CLIENT_TOOLS.labels(server=self.name).set(len(tools))
        self._log.info(
            "mcp_tools_listed",
            tools=len(tools),
            added=sorted(set(self.tools) - before)[:20],
            removed=sorted(before - set(self.tools))[:20],
        )

    def _select(self, remote: Iterable[mcp_types.Tool]) -> Iterable[Tool]:
        config = self.config
        seen: set[str] = set()
        for tool in remote:
            if config.include and not any(fnmatch.fnmatchcase(tool.name, p) for p in config.include):
                continue
            if any(fnmatch.fnmatchcase(tool.name, pattern) for pattern in config.exclude):
                continue
            name = prism_name(self.name, tool.name)
            if name is None or name in seen:
                self._log.warning("mcp_tool_skipped", tool=tool.name[:100], reason="name too long or taken")
                continue
            if len(seen) >= config.max_tools:
                self._log.warning("mcp_tool_skipped", tool=tool.name[:100], reason="max_tools reached")
                continue
            seen.add(name)
            yield McpServerTool(self, tool, name)

    def _drop_tools(self) -> None:
        self._registry.replace_group(tool_prefix(self.name), [])
        self.tools = []
        metrics.MCP_CLIENT_UP.labels(server=self.name).set(0)
        metrics.MCP_CLIENT_TOOLS.labels(server=self.name).set(0)


def _describe(exc: BaseException) -> str:
    """A short reason for logs and /readyz (exception groups from task groups are unwrapped)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class McpClients:
    """Every configured MCP server's connection (built once in the lifespan)."""

    def __init__(
        self, configs: Iterable[McpServerConfig], registry: ToolRegistry, *, env: Mapping[str, str]
    ) -> None:
        self.connections = {config.name: McpConnection(config, registry, env=env) for config in configs}

    def start(self) -> None:
        for connection in self.connections.values():
            connection.start()

    def health(self) -> dict[str, dict[str, Any]]:
        return {name: connection.health() for name, connection in self.connections.items()}

    async def aclose(self) -> None:
        for connection in self.connections.values():
            await connection.aclose()
