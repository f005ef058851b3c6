"""Prism's ``/mcp`` endpoint (issue #22 item 5) driven by the real ``mcp`` SDK client
(``streamable_http_client`` + ``ClientSession``) against a real uvicorn Prism with authentication on;
behind Prism, a real MCP server (``tests/fakes/mcp_server.py``, stdio) whose tools Prism proxies."""

from __future__ import annotations

import contextlib
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.support.gateway_proc import ROOT, GatewayProcess, running_gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ADMIN = ("mcp-admin@example.com", "An-admin-passphrase-42")
PASSWORD = "A-user-passphrase-42"
CONFIG = f"""
models:
  m: {{provider: mock}}
tools:
  enabled: [calculator, datetime]
  mcp_servers:
    - name: fake
      label: The fake server
      transport: stdio
      command: {sys.executable}
      args: ["-m", "tests.fakes.mcp_server", "stdio"]
      cwd: {ROOT}
      exclude: [crash]
  mcp_endpoint:
    admin_only: ["mcp__*"]
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env = {
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_ADMIN_EMAIL": ADMIN[0],
        "GATEWAY_ADMIN_PASSWORD": ADMIN[1],
        "GATEWAY_REGISTRATION_OPEN": "true",
    }
    tmp: Path = tmp_path_factory.mktemp("mcp-endpoint")
    with running_gateway(tmp, config=CONFIG, env=env, ready_timeout=120) as gateway:  # a loaded machine
        wait_until(
            lambda: (
                httpx.get(f"{gateway.url}/readyz").json().get("mcp", {}).get("fake", {}).get("state")
                == "connected"
            ),
            "the fake MCP server connected",
            within_s=30,
        )
        yield gateway


def _key(gateway: GatewayProcess, email: str, password: str) -> str:
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        login = http.post("/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        created = http.post("/api/keys", json={"name": "mcp"}, headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201, created.text
        key: str = created.json()["key"]
        return key


@pytest.fixture(scope="module")
def admin_key(gateway: GatewayProcess) -> str:
    return _key(gateway, *ADMIN)


@pytest.fixture(scope="module")
def user_key(gateway: GatewayProcess) -> str:
    email = f"mcp-user-{uuid.uuid4().hex[:8]}@example.com"
    registered = httpx.post(f"{gateway.url}/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 202, registered.text
    return _key(gateway, email, PASSWORD)


@contextlib.asynccontextmanager
async def mcp_session(gateway: GatewayProcess, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http,
        streamable_http_client(f"{gateway.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _text(result: object) -> str:
    content = result.content  # type: ignore[attr-defined]
    return "".join(block.text for block in content)


async def test_an_admin_key_lists_and_calls_builtin_and_proxied_tools(
    gateway: GatewayProcess, admin_key: str
) -> None:
    async with mcp_session(gateway, {"Authorization": f"Bearer {admin_key}"}) as session:
        info = session.server_info
        assert info is not None and info.name == "prism"
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert {"calculator", "datetime", "mcp__fake__add", "mcp__fake__echo"} <= names
        assert "mcp__fake__crash" not in names  # excluded in the config

        calc = await session.call_tool("calculator", {"expression": "1/3 + 1/6"})
        assert not calc.is_error
        assert calc.structured_content == {
            "expression": "1/3 + 1/6",
            "result": "0.5",
            "exact": True,
            "fraction": "1/2",
        }

        clock = await session.call_tool(
            "datetime", {"operation": "diff", "start": "2024-01-01T00:00:00Z", "end": "2024-03-01T00:00:00Z"}
        )
        assert not clock.is_error, _text(clock)
        assert clock.structured_content is not None and clock.structured_content["total_days"] == 60

        proxied = await session.call_tool("mcp__fake__add", {"a": 2, "b": 40})
        assert not proxied.is_error, _text(proxied)
        assert proxied.structured_content == {"text": "42", "structured": {"result": 42}}

        failed = await session.call_tool("calculator", {"expression": "1/0"})
        assert failed.is_error and '"code":"execution_error"' in _text(failed)

    metrics = await _metrics(gateway)
    assert _count(metrics, "calculator", "ok") >= 1
    assert _count(metrics, "calculator", "execution_error") >= 1
    assert _count(metrics, "mcp__fake__add", "ok") >= 1
    assert "mcp_server_call" in gateway.log()


async def test_x_api_key_header_works_too(gateway: GatewayProcess, admin_key: str) -> None:
    async with mcp_session(gateway, {"X-API-Key": admin_key}) as session:
        result = await session.call_tool("calculator", {"expression": "6 * 7"})
        assert _text(result) == '{"expression":"6 * 7","result":"42","exact":true}'


async def test_a_user_sees_only_the_tools_it_may_use(gateway: GatewayProcess, user_key: str) -> None:
    async with mcp_session(gateway, {"Authorization": f"Bearer {user_key}"}) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        # search is registered wherever retrieval is served; it reads only collections the caller may
        assert names == {"calculator", "datetime", "search"}
        with pytest.raises(MCPError) as refused:
            await session.call_tool("mcp__fake__add", {"a": 1, "b": 1})
        assert "Unknown tool" in refused.value.message  # the same answer as for a tool that does not exist
        with pytest.raises(MCPError):
            await session.call_tool("no_such_tool", {})
    assert _count(await _metrics(gateway), "other", "forbidden") >= 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-prism-not-a-real-key"},
        {"X-API-Key": "nope"},
        {"Authorization": "Basic x"},
    ],
)
def test_no_or_a_bad_credential_is_a_401_with_a_json_rpc_error(
    gateway: GatewayProcess, headers: dict[str, str]
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    answer = httpx.post(
        f"{gateway.url}/mcp",
        json=body,
        headers={**headers, "Accept": "application/json, text/event-stream"},
    )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    error = answer.json()
    assert error["jsonrpc"] == "2.0" and error["id"] is None and error["error"]["code"] == -32001


async def test_the_sdk_client_fails_cleanly_without_a_key(gateway: GatewayProcess) -> None:
    with pytest.raises(ExceptionGroup) as caught:  # raised out of the transport's task group
        async with mcp_session(gateway, {}):
            pass
    assert caught.group_contains(MCPError, match="Missing credentials")


async def _metrics(gateway: GatewayProcess) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{gateway.url}/metrics")).text


def _count(metrics: str, tool: str, status: str) -> float:
    pattern = rf'prism_mcp_server_calls_total{{status="{status}",tool="{tool}"}} ([0-9.e+]+)'
    return sum(float(match.group(1)) for match in re.finditer(pattern, metrics))


def test_the_route_is_an_ordinary_gateway_route(gateway: GatewayProcess, admin_key: str) -> None:
    """Stateless: no GET stream and no session to DELETE (405, as the spec allows); a request id and
    the route in the request metrics like every route."""
    auth = {"Authorization": f"Bearer {admin_key}"}
    for method in ("GET", "DELETE"):
        answer = httpx.request(method, f"{gateway.url}/mcp", headers={**auth, "Accept": "text/event-stream"})
        assert answer.status_code == 405 and answer.headers["allow"] == "POST"
        assert answer.json()["error"]["code"] == -32000
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}
    listed = httpx.post(
        f"{gateway.url}/mcp",
        json=body,
        headers={
            **auth,
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        },
    )
    assert listed.status_code == 200, listed.text
    assert listed.headers["x-request-id"] and listed.headers["content-type"].startswith("application/json")
    assert listed.json()["id"] == 7 and "calculator" in {
        tool["name"] for tool in listed.json()["result"]["tools"]
    }
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert re.search(r'prism_requests_total\{[^}]*route="/mcp"[^}]*status="200"', metrics), [
        line for line in metrics.splitlines() if "/mcp" in line
    ]
