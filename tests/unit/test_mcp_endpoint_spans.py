"""``/mcp`` in-process: a ``tools/call`` is one ``POST /mcp`` server span with the call's
``execute_tool`` span as its child (the SDK runs handlers in its own task group: the request's
trace context is carried over explicitly), and the call is counted by tool and status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from tests.support.traced_app import traced_app

CONFIG = """
models:
  m: {provider: mock}
tools:
  enabled: [calculator, datetime]
"""
HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    async with traced_app(tmp_path, CONFIG) as (http, exporter, _state):
        yield http, exporter


def _calls(tool: str, status: str) -> float:
    return REGISTRY.get_sample_value("prism_mcp_server_calls_total", {"tool": tool, "status": status}) or 0.0


async def test_a_tool_call_is_an_execute_tool_span_under_the_request_span(
    client: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    http, exporter = client
    before = _calls("calculator", "ok")
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "calculator", "arguments": {"expression": "2 ** 10"}},
    }
    answer = await http.post("/mcp", json=body, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["isError"] is False and result["structuredContent"]["result"] == "1024"
    assert _calls("calculator", "ok") == before + 1

    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "POST /mcp"]
    tool = [s for s in spans if s.name == "execute_tool calculator"]
    assert len(server) == 1 and len(tool) == 1, [s.name for s in spans]
    assert tool[0].parent is not None and server[0].context is not None
    assert tool[0].context is not None and tool[0].context.trace_id == server[0].context.trace_id
    assert tool[0].parent.span_id == server[0].context.span_id
    assert tool[0].attributes is not None and tool[0].attributes["gen_ai.tool.name"] == "calculator"


async def test_an_unknown_tool_is_a_json_rpc_error_and_counted(
    client: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    http, _exporter = client
    before = _calls("other", "forbidden")
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "rm_rf", "arguments": {}}}
    answer = await http.post("/mcp", json=body, headers=HEADERS)
    error = answer.json()["error"]
    assert error["code"] == -32602 and error["message"] == "Unknown tool: rm_rf"
    assert _calls("other", "forbidden") == before + 1
