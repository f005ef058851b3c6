"""A Responses request is traced like a chat request: one server span ``POST /v1/responses`` under
the client's ``traceparent``, with the flow's node and provider spans (a retry and a fallback here)
below it, and the mock provider's answer rendered as a response object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from openai.types.responses import Response
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.support.traced_app import traced_app

CONFIG = """
models:
  primary:
    provider: mock
    mock: {failure_rate: 1.0, failure_kind: "500"}
  backup:
    provider: mock
fallbacks:
  primary: [backup]
retry: {max_attempts: 2, base_delay_s: 0.001, max_delay_s: 0.002, deadline_s: 10}
circuit_breaker: {failure_threshold: 50, cooldown_s: 1, max_cooldown_s: 10}
"""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    async with traced_app(tmp_path, CONFIG) as (http, exporter, _state):
        yield http, exporter


async def test_one_server_span_with_the_flow_below(
    client: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    http, exporter = client
    answer = await http.post(
        "/v1/responses",
        json={"model": "primary", "input": "hi", "max_output_tokens": 20},
        headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-prism-fallback"] == "primary->backup"
    response = Response.model_validate(answer.json())
    assert response.output_text == "backup says: hi" and response.model == "backup"
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "POST /v1/responses"
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 200
    assert {format(s.context.trace_id, "032x") for s in spans if s.context} == {TRACE_ID}
    names = [s.name for s in spans]
    assert names.count("node call_model") == 3 and "node fallback" in names

    stored = await http.get(f"/v1/responses/{response.id}")  # anonymous principal: its own response
    assert stored.status_code == 200 and stored.json()["output"] == answer.json()["output"]
