"""Tracing in-process: the span tree of one request with a retry and a fallback, and the client's parent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.support.traced_app import traced_app

CONFIG = """
models:
  primary:
    provider: mock
    tier: cheap
    mock: {failure_rate: 1.0, failure_kind: "500"}
  backup:
    provider: mock
    tier: strong
  candidate:
    provider: mock
    tier: cheap
aliases:
  mirrored: {target: backup, shadow: [candidate]}
fallbacks:
  primary: [backup]
retry: {max_attempts: 2, base_delay_s: 0.001, max_delay_s: 0.002, deadline_s: 10}
circuit_breaker: {failure_threshold: 50, cooldown_s: 1, max_cooldown_s: 10}
"""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    async with traced_app(tmp_path, CONFIG) as (http, exporter, _state):
        yield http, exporter


def _by_parent(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_retry_and_fallback_are_sibling_attempts_under_the_client_parent(
    client: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    http, exporter = client
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "primary", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20},
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-prism-fallback"] == "primary->backup"
    spans = exporter.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans if s.context} == {TRACE_ID}

    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "POST /v1/chat/completions"
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_ID
    assert server.parent.is_remote
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 200

    nodes = _by_parent(spans, server)
    names = [s.name for s in sorted(nodes, key=lambda s: s.start_time or 0)]
    assert names.count("node call_model") == 3
    assert (
        "node fallback" in names
        and "node router" in names
        and "node deliver" in names
        and "node settle" in names
    )

    attempts = sorted((s for s in spans if s.name.startswith("gen_ai.chat")), key=lambda s: s.start_time or 0)
    assert [s.name for s in attempts] == ["gen_ai.chat primary", "gen_ai.chat primary", "gen_ai.chat backup"]
    for attempt in attempts:
        parent = next(
            s for s in spans if s.context and attempt.parent and s.context.span_id == attempt.parent.span_id
        )
        assert parent.name == "node call_model"
        assert parent.parent is not None and server.context is not None
        assert parent.parent.span_id == server.context.span_id
        assert attempt.kind is SpanKind.CLIENT
    first, second, third = (dict(s.attributes or {}) for s in attempts)
    assert (first["prism.attempt"], second["prism.attempt"], third["prism.attempt"]) == (1, 2, 1)
    assert first["prism.target"] == second["prism.target"] == "primary"
    assert third["prism.target"] == "backup"
    for failed, attrs in ((attempts[0], first), (attempts[1], second)):
        assert failed.status.status_code is StatusCode.ERROR
        assert attrs["error.type"]
    assert attempts[2].status.status_code is not StatusCode.ERROR
    assert "error.type" not in third
    assert third["gen_ai.system"] == third["gen_ai.provider.name"] == "mock"
    assert third["gen_ai.request.model"] == third["gen_ai.response.model"]
    assert third["gen_ai.request.max_tokens"] == 20
    assert int(third["gen_ai.usage.input_tokens"]) > 0 and int(third["gen_ai.usage.output_tokens"]) > 0


async def test_streamed_attempt_span_ends_with_usage(
    client: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    http, exporter = client
    async with http.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "backup", "messages": [{"role": "user", "content": "stream"}], "stream": True},
    ) as response:
        body = b"".join([part async for part in response.aiter_bytes()])
    assert response.status_code == 200 and body.endswith(b"data: [DONE]\n\n")
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.parent is None  # no traceparent sent: a new trace
    [attempt] = [s for s in spans if s.name == "gen_ai.chat backup"]
    assert attempt.attributes is not None and int(attempt.attributes["gen_ai.usage.output_tokens"]) > 0
    assert attempt.end_time is not None and server.end_time is not None
    assert attempt.end_time <= server.end_time


async def test_shadow_span_links_to_the_answering_attempt_and_carries_its_usage(
    client: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    """Issue #26: shadow spans linked to the ``shadow`` node and carried no model or usage."""
    import asyncio

    http, exporter = client
    response = await http.post(
        "/v1/chat/completions", json={"model": "mirrored", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 200
    for _ in range(200):  # the shadow runs after the answer: wait for its span, bounded
        shadows = [s for s in exporter.get_finished_spans() if s.name == "gen_ai.chat candidate"]
        if shadows:
            break
        await asyncio.sleep(0.01)
    [shadow] = shadows
    [attempt] = [s for s in exporter.get_finished_spans() if s.name == "gen_ai.chat backup"]
    assert attempt.context is not None and shadow.parent is None
    assert [link.context.span_id for link in shadow.links] == [attempt.context.span_id]
    attributes = shadow.attributes or {}
    assert attributes["prism.shadow"] is True and attributes["gen_ai.request.model"] == "candidate"
    assert int(attributes["gen_ai.usage.output_tokens"]) > 0 and attributes["prism.shadow.pair_id"]
