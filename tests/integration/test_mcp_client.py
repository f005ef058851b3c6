"""Prism as an MCP client (issue #22 item 4) against a real MCP server built with the SDK's
``MCPServer`` (``tests/fakes/mcp_server.py``), over stdio (a child process) and Streamable HTTP
(uvicorn on a loopback port of its own): discovery, calls, ``tools/list_changed``, a slow tool hitting
the per-server timeout, a crash mid-call and the reconnect, a restarted HTTP server, secrets by
variable name, result limits."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from gateway.config.tools import McpServerConfig, ToolsConfig
from gateway.tools.builtin import build_registry
from gateway.tools.mcp_client import McpClients, McpConnection
from gateway.tools.registry import ToolRegistry
from tests.support.gateway_proc import ROOT
from tests.support.ports import HOST
from tests.support.waiting import eventually, wait_until

pytestmark = pytest.mark.integration


@dataclass
class HttpServer:
    """The fake MCP server under uvicorn, serving on a socket this test bound."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    def start(self, sock: socket.socket | None = None) -> None:
        """Serve on ``sock``, or (a restart) on this port again: it is free once the last server
        died, and ``SO_REUSEADDR`` on both sockets lets the new one bind past its TIME_WAIT."""
        sock = sock or _listener(self.port)
        with sock:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fakes.mcp_server", "http", "--fd", str(sock.fileno())],
                cwd=ROOT,
                pass_fds=(sock.fileno(),),
                stderr=subprocess.DEVNULL,
            )
            wait_until(self._answers, "the fake MCP server answers over HTTP", within_s=30)
        # our copy is closed: once the child dies, connections are refused

    def _answers(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "the fake MCP server exited"
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.url, timeout=1.0).status_code in (400, 405, 406)
        return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _listener(port: int = 0) -> socket.socket:
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(64)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    sock = _listener()
    server = HttpServer(port=int(sock.getsockname()[1]))
    server.start(sock)
    try:
        yield server
    finally:
        server.kill()


def _config(transport: str, http: HttpServer | None, **overrides: Any) -> McpServerConfig:
    base: dict[str, Any] = {
        "name": "fake",
        "ping_interval_s": 0.2,
        "connect_timeout_s": 5.0,
        "timeout_s": 5.0,
    }
    if transport == "stdio":
        base |= {
            "transport": "stdio",
            "command": sys.executable,
            "args": ("-m", "tests.fakes.mcp_server", "stdio"),
            "cwd": ROOT,
        }
    else:
        assert http is not None
        base |= {"transport": "streamable_http", "url": http.url}
    return McpServerConfig.model_validate(base | overrides)


@contextlib.asynccontextmanager
async def connected(
    config: McpServerConfig, env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[ToolRegistry, McpConnection]]:
    registry = build_registry(ToolsConfig(enabled=("calculator",), timeout_s=30))
    clients = McpClients([config], registry, env=os.environ if env is None else env)
    clients.start()
    connection = clients.connections[config.name]
    try:
        await eventually(lambda: connection.state == "connected", "connected", within_s=30)
        yield registry, connection
    finally:
        await clients.aclose()


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(transport: str, request: pytest.FixtureRequest) -> HttpServer | None:
    if transport == "stdio":
        return None
    http: HttpServer = request.getfixturevalue("http_server")
    return http


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_tools_are_discovered_namespaced_and_called(transport: str, server: HttpServer | None) -> None:
    config = _config(transport, server, exclude=("crash",))
    async with connected(config) as (registry, connection):
        names = set(registry.names)
        assert {"calculator", "mcp__fake__add", "mcp__fake__echo", "mcp__fake__grow"} <= names
        assert "mcp__fake__crash" not in names
        spec = {s["function"]["name"]: s for s in registry.specs()}["mcp__fake__add"]
        assert spec["function"]["description"] == "Add two integers."
        assert set(spec["function"]["parameters"]["properties"]) == {"a", "b"}

        result = await registry.call("mcp__fake__add", '{"a": 2, "b": 40}', call_id="c1")
        assert result.ok and result.data == {"text": "42", "structured": {"result": 42}}
        failed = await registry.call("mcp__fake__fail", "{}", call_id="c2")
        assert failed.status == "execution_error" and "failed on purpose" in (failed.error_message or "")

        assert _sample("prism_mcp_client_up", server="fake") == 1
        assert _sample("prism_mcp_client_tools", server="fake") == len(connection.tools) == 7
        assert connection.health()["state"] == "connected"
    assert _sample("prism_mcp_client_up", server="fake") == 0
    assert not [name for name in registry.names if name.startswith("mcp__")]


async def test_tools_list_changed_refreshes_the_registry(transport: str, server: HttpServer | None) -> None:
    async with connected(_config(transport, server)) as (registry, _connection):
        before = _sample("prism_mcp_client_tool_refreshes_total", server="fake")
        assert "mcp__fake__late_tool" not in registry.names
        grown = await registry.call("mcp__fake__grow", "{}", call_id="g")
        assert grown.ok, grown.content
        await eventually(lambda: "mcp__fake__late_tool" in registry.names, "late_tool listed", within_s=10)
        late = await registry.call("mcp__fake__late_tool", "{}", call_id="l")
        assert late.ok and late.data["text"] == "late"
        assert _sample("prism_mcp_client_tool_refreshes_total", server="fake") == before + 1


async def test_a_slow_tool_hits_the_server_timeout(transport: str, server: HttpServer | None) -> None:
    async with connected(_config(transport, server, timeout_s=0.5)) as (registry, connection):
        slow = await registry.call("mcp__fake__slow", '{"seconds": 20}', call_id="s")
        assert slow.status == "timeout" and slow.duration_s < 3, slow
        assert "0.5 s" in (slow.error_message or "")
        # the session survives a timed-out call
        after = await registry.call("mcp__fake__add", '{"a": 1, "b": 1}', call_id="a")
        assert after.ok and connection.connects == 1


async def test_a_crash_mid_call_reconnects(transport: str, server: HttpServer | None) -> None:
    async with connected(_config(transport, server)) as (registry, connection):
        crashed = await registry.call("mcp__fake__crash", "{}", call_id="x")
        assert not crashed.ok and crashed.status in ("unavailable", "execution_error"), crashed
        if server is not None:  # over HTTP the server is a process of its own: start it again
            assert server.process is not None
            server.process.wait()  # the crash tool exited it
            await eventually(lambda: connection.state != "connected", "the drop noticed", within_s=10)
            assert "mcp__fake__add" not in registry.names  # a down server's tools are not offered
            server.start()
        await eventually(
            lambda: connection.connects == 2 and connection.state == "connected", "reconnected", within_s=30
        )
        again = await registry.call("mcp__fake__add", '{"a": 3, "b": 4}', call_id="y")
        assert again.ok and again.data["structured"] == {"result": 7}
        assert _sample("prism_mcp_client_connects_total", server="fake", outcome="ok") >= 2


async def test_a_server_that_is_down_is_retried_with_backoff(http_server: HttpServer) -> None:
    http_server.kill()
    config = _config("http", http_server, reconnect_max_s=0.4)
    registry = build_registry(ToolsConfig(enabled=("calculator",)))
    clients = McpClients([config], registry, env=os.environ)
    clients.start()
    connection = clients.connections["fake"]
    try:
        failed_before = _sample("prism_mcp_client_connects_total", server="fake", outcome="failed")
        await eventually(
            lambda: (
                _sample("prism_mcp_client_connects_total", server="fake", outcome="failed")
                >= failed_before + 3
            ),
            "three failed attempts",
            within_s=20,
        )
        assert connection.state != "connected" and connection.last_error
        call = await registry.call("mcp__fake__add", "{}", call_id="d")
        assert call.status == "unknown_tool"
        http_server.start()
        await eventually(
            lambda: connection.state == "connected", "connected once the server is up", within_s=30
        )
    finally:
        await clients.aclose()


async def test_environment_is_passed_by_variable_name_only() -> None:
    config = _config("stdio", None, env={"MCP_FAKE_MARKER": "PRISM_TEST_MCP_MARKER"})
    env = {**os.environ, "PRISM_TEST_MCP_MARKER": "marker-123", "GATEWAY_JWT_SECRET": "do-not-leak"}
    async with connected(config, env=env) as (registry, _connection):
        who = await registry.call("mcp__fake__whoami", "{}", call_id="w")
        assert who.data["text"] == "marker-123 secret=unset"


async def test_a_missing_variable_keeps_the_server_down_with_a_reason() -> None:
    config = _config("stdio", None, env={"TOKEN": "PRISM_TEST_UNSET_VARIABLE"})
    registry = build_registry(ToolsConfig(enabled=("calculator",)))
    clients = McpClients([config], registry, env={})
    clients.start()
    try:
        connection = clients.connections["fake"]
        await eventually(lambda: connection.last_error, "a failed attempt", within_s=10)
        assert "PRISM_TEST_UNSET_VARIABLE is not set" in str(connection.last_error)
    finally:
        await clients.aclose()


async def test_a_long_result_is_cut_to_the_server_limit() -> None:
    async with connected(_config("stdio", None, max_result_chars=1000)) as (registry, _connection):
        big = await registry.call("mcp__fake__big", '{"n": 50000}', call_id="b")
        assert big.ok and big.data["truncated"] is True and len(big.data["text"]) == 1000
        assert "structured" not in big.data
