"""Transparency as a property (issue #20): what an OpenAI-compatible upstream returns reaches the
client unchanged, and what the client sends reaches the upstream, modulo the documented exceptions
(docs/api.md, "Transparency").

A recording upstream (``tests/fakes/scripted_upstream.py``, real HTTP on 127.0.0.1) answers with
randomised, schema-valid OpenAI answers and streams (Hypothesis); the client is raw httpx, so every
byte the gateway sends is compared, field by field, with what the upstream sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.scripted_upstream import Reply, ScriptedOpenAIUpstream, running_scripted_openai
from tests.integration.openai_shapes import REQUEST_FIELDS, UNKNOWN, completion, stream
from tests.support.gateway_proc import GatewayProcess, running_gateway

CONFIG = """
models:
  plain:
    provider: openai
    model: upstream-model
    base_url: {base}
    local: false
    tier: cheap
  guarded:
    provider: openai
    model: upstream-model
    base_url: {base}
    local: true
    tier: cheap
retry: {{max_attempts: 1, base_delay_s: 0.01, max_delay_s: 0.05, deadline_s: 10}}
cache: {{enabled: false}}
guardrails:
  external:
    enabled: false
    output: {{enabled: false, unmask: false}}
  local:
    enabled: true
    pii_default: allow
    output: {{enabled: true, unmask: true}}
"""

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[ScriptedOpenAIUpstream]:
    with running_scripted_openai() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    fake: ScriptedOpenAIUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = CONFIG.format(base=fake.openai_base_url)
    with running_gateway(tmp_path_factory.mktemp("transparent"), config=config) as process:
        yield process


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.openai_base_url, timeout=20) as http:
        yield http


def _events(response: httpx.Response) -> list[Any]:
    lines = [line for line in response.text.split("\n") if line]
    assert lines[-1] == "data: [DONE]", lines[-3:]
    assert all(line.startswith("data: ") for line in lines)
    return [orjson.loads(line[6:]) for line in lines[:-1]]


def _own_id(body: dict[str, Any], response: httpx.Response) -> dict[str, Any]:
    """The one field Prism always replaces: ``id`` (``chatcmpl-<x-request-id>``)."""
    assert body["id"] == f"chatcmpl-{response.headers['x-request-id']}"
    return {key: value for key, value in body.items() if key != "id"}


def _without_id(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "id"}


@PROPERTY
@given(answer=st.integers(1, 3).flatmap(lambda n: completion(n=n)), extra=REQUEST_FIELDS)
def test_json_answers_arrive_as_sent(
    fake: ScriptedOpenAIUpstream, client: httpx.Client, answer: dict[str, Any], extra: dict[str, Any]
) -> None:
    fake.script(Reply(body=answer))
    n = len(answer["choices"])
    response = client.post(
        "/chat/completions", json={"model": "plain", "messages": MESSAGES, "n": n, **extra}
    )
    assert response.status_code == 200, response.text
    assert _own_id(response.json(), response) == _without_id(answer)


@PROPERTY
@given(
    chunks=st.tuples(st.integers(1, 3), st.booleans()).flatmap(lambda a: stream(n=a[0], with_usage=a[1])),
    include_usage=st.booleans(),
)
def test_streams_arrive_as_sent(
    fake: ScriptedOpenAIUpstream, client: httpx.Client, chunks: list[dict[str, Any]], include_usage: bool
) -> None:
    """Same chunks, same order, same grouping. Without ``include_usage`` the ``usage`` field and the
    usage chunk (asked for by Prism for its books) are not relayed; with it and an upstream that sent
    none, Prism's own count is the last chunk."""
    fake.script(Reply(chunks=chunks))
    n = len({chunk["choices"][0]["index"] for chunk in chunks if chunk["choices"]})
    body = {"model": "plain", "messages": MESSAGES, "stream": True, "n": n}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    with client.stream("POST", "/chat/completions", json=body) as response:
        response.read()
    assert response.status_code == 200, response.text
    got = [_own_id(event, response) for event in _events(response)]
    upstream_usage = any(chunk.get("usage") for chunk in chunks)
    expected = []
    for chunk in chunks:
        if not include_usage and "usage" in chunk:
            if not chunk["choices"]:
                continue
            chunk = {key: value for key, value in chunk.items() if key != "usage"}
        expected.append(_without_id(chunk))
    if include_usage and not upstream_usage:
        own = got.pop()
        assert own["choices"] == [] and own["usage"]["completion_tokens"] >= 0
        assert own["model"] == chunks[-1]["model"]
    assert got == expected


@PROPERTY
@given(chunks=stream(n=1, with_usage=True))
def test_the_output_guard_moves_text_only(
    fake: ScriptedOpenAIUpstream, client: httpx.Client, chunks: list[dict[str, Any]]
) -> None:
    """With the output guard on (model ``guarded``) chunks are held until the guard cleared their
    text; where it changes the text (random text can look like PII), the text may move between chunks
    of the choice, but every chunk still arrives, in order, with every other field as sent (an
    unchanged answer arriving chunk for chunk is ``tests/unit/test_guard_frames.py``)."""
    fake.script(Reply(chunks=chunks))
    body = {
        "model": "guarded",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/chat/completions", json=body) as response:
        response.read()
    assert response.status_code == 200, response.text
    got = [_own_id(event, response) for event in _events(response)]

    def strip(chunk: dict[str, Any]) -> dict[str, Any]:
        choices = [
            {**c, "delta": {k: v for k, v in c["delta"].items() if k not in ("content", "tool_calls")}}
            for c in chunk["choices"]
        ]
        return {**_without_id(chunk), "choices": choices}

    def text(events: list[dict[str, Any]]) -> str:
        return "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])

    def arguments(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Each call's arguments, in the order the calls started: call k's text is complete before
        call k+1 starts (no interleaving)."""
        calls: list[tuple[int, str]] = []
        for call in (
            call for e in events for c in e["choices"] for call in c["delta"].get("tool_calls") or ()
        ):
            piece = call.get("function", {}).get("arguments") or ""
            if not calls or calls[-1][0] != call["index"]:
                calls.append((call["index"], piece))
            else:
                calls[-1] = (call["index"], calls[-1][1] + piece)
        return calls

    assert [strip(chunk) for chunk in got] == [strip(chunk) for chunk in chunks]
    assert text(got) == text(chunks)
    assert arguments(got) == arguments(chunks)


@PROPERTY
@given(known=REQUEST_FIELDS, unknown=UNKNOWN, stream_it=st.booleans())
def test_requests_reach_the_upstream_as_sent(
    fake: ScriptedOpenAIUpstream,
    client: httpx.Client,
    known: dict[str, Any],
    unknown: dict[str, Any],
    stream_it: bool,
) -> None:
    """Every field the client sends reaches the upstream unchanged, unknown ones too, except
    ``model`` (the configured upstream id), ``stream_options.include_usage`` (always asked for a
    stream) and ``metadata``, which is forwarded only with ``store: true`` (OpenAI refuses it otherwise)."""
    answer = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    }
    if stream_it:
        finish = {"index": 0, "delta": {}, "finish_reason": "stop"}
        fake.script(Reply(chunks=[{**answer, "object": "chat.completion.chunk", "choices": [finish]}]))
    else:
        fake.script(Reply(body=answer))
    marker = uuid.uuid4().hex
    messages = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": f"hi {marker}"}]
    sent = {"model": "plain", "messages": messages, **known, **unknown}
    if stream_it:
        sent["stream"] = True
    response = client.post("/chat/completions", json=sent)
    assert response.status_code == 200, response.text
    received = fake.last_request
    assert received is not None and received.body["messages"] == messages
    expected = {**sent, "model": "upstream-model"}
    if stream_it:
        expected["stream_options"] = {"include_usage": True}
    if "metadata" in sent and sent.get("store") is not True:
        del expected["metadata"]
    assert received.body == expected
