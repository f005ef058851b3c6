"""Hostile input: every malformed or abusive request is a 4xx in OpenAI's error shape that never
reaches the provider (the fake's counters stay at 0) and costs no token."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.chaos.test_chaos import config, db_path, env
from tests.fakes.openai_upstream import FakeOpenAIUpstream, run_in_thread
from tests.support.gateway_proc import GatewayProcess, running_gateway
from tests.support.waiting import wait_until

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIUpstream]:
    with run_in_thread(FakeOpenAIUpstream(chunks=4)) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAIUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("hostile")
    with running_gateway(
        tmp,
        config=config(fake),
        env=env(GATEWAY_MAX_BODY_BYTES="200000", GATEWAY_MAX_MESSAGES="50", GATEWAY_MAX_TOTAL_CHARS="1000"),
    ) as gateway:
        yield gateway


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return dict(body["error"])


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def chat(**extra: Any) -> dict[str, Any]:
    return {"json": {"model": "chat", "messages": MSG, **extra}}


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


JSON = {"content-type": "application/json"}
NAN_TOP_P = b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "top_p": NaN}'
CASES: list[tuple[str, dict[str, Any], int]] = [
    ("invalid json", {"content": b'{"model": "chat", "messages": [', "headers": JSON}, 400),
    ("invalid utf-8", {"content": b'{"model":"chat","messages":[{"role":"user","content":"\xff"}]}'}, 400),
    ("not an object", {"json": [1, 2, 3]}, 400),
    ("deep nesting", chat(metadata={"x": nested(200)}), 400),
    ("huge integer", {"content": b'{"model": "chat", "messages": [], "seed": 1' + b"0" * 40 + b"}"}, 400),
    ("too many messages", {"json": {"model": "chat", "messages": MSG * 51}}, 400),
    ("too many chars", {"json": {"model": "chat", "messages": user("y" * 1001)}}, 400),
    (
        "too many chars in parts",
        {"json": {"model": "chat", "messages": user([{"type": "text", "text": "z" * 1001}])}},
        400,
    ),
    ("huge max_tokens", chat(max_tokens=257), 400),
    ("absurd max_tokens", chat(max_tokens=10**12), 400),
    ("negative max_tokens", chat(max_tokens=-5), 400),
    ("negative temperature", chat(temperature=-1), 400),
    ("absurd n", chat(n=10_000), 400),
    ("nan top_p", {"content": NAN_TOP_P}, 400),
    ("bad timeout header", {**chat(), "headers": {"x-prism-timeout": "-3"}}, 400),
    ("body too large", {"json": {"model": "chat", "messages": user("w" * 300_000)}}, 413),
]


@pytest.mark.parametrize(("name", "request_kwargs", "status"), CASES, ids=[c[0] for c in CASES])
def test_rejected_before_the_provider(
    gateway: GatewayProcess, fake: FakeOpenAIUpstream, name: str, request_kwargs: dict[str, Any], status: int
) -> None:
    before = fake.total_requests
    _error(httpx.post(gateway.url + CHAT, timeout=10, **request_kwargs), status)
    assert fake.total_requests == before, f"{name} reached the provider"


def _usage_queue_depth(gateway: GatewayProcess) -> float:
    for line in httpx.get(gateway.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("prism_usage_queue_depth "):
            return float(line.split()[1])
    raise AssertionError("prism_usage_queue_depth is not exported")


def test_no_tokens_spent_on_rejections(gateway: GatewayProcess, fake: FakeOpenAIUpstream) -> None:
    for _, kwargs, status in CASES:
        _error(httpx.post(gateway.url + CHAT, timeout=10, **kwargs), status)
    # A non-streamed answer (an error too) leaves the request's usage record queued; depth 0 means
    # every record so far is in the database.
    wait_until(lambda: _usage_queue_depth(gateway) == 0, "the usage recorder writes what it holds")
    with sqlite3.connect(db_path(gateway)) as db:
        spent = db.execute(
            "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0), coalesce(sum(cost_usd), 0) "
            "FROM usage_logs"
        ).fetchone()
    assert spent == (0, 0), spent
    assert fake.total_requests == 0


def test_request_id_injection_is_replaced(gateway: GatewayProcess) -> None:
    raw = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc%0d%0aSet-Cookie: evil=1\r\n"
        b"Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert b"set-cookie" not in head and b"evil" not in head
    rid = [line for line in head.split(b"\r\n") if line.startswith(b"x-request-id:")]
    assert rid and b"%" not in rid[0]
    assert b"x-client-request-id" not in head  # a malformed client id is not echoed
    ok = httpx.get(gateway.url + "/healthz", headers={"X-Request-ID": "ok-id.1"})
    assert ok.headers["x-client-request-id"] == "ok-id.1"
    assert len(ok.headers["x-request-id"]) == 32  # always the server's own



def test_client_leaving_mid_body_is_not_a_server_error(
    gateway: GatewayProcess, fake: FakeOpenAIUpstream
) -> None:
    """A client that announces a body and hangs up halfway: counted as 499, logged as a disconnect,
    no traceback, nothing sent upstream — and the next request is served as usual."""
    before = fake.total_requests
    raw = (
        f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    ).encode() + b'{"model": "chat", "messages": [{"role": "user", "content": "cut'
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(raw)
    deadline = time.monotonic() + 5
    while "client_disconnected" not in gateway.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = gateway.log()
    assert "client_disconnected" in log and "unhandled_error" not in log
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'route="/v1/chat/completions",status="499"' in metrics
    assert fake.total_requests == before
    ok = httpx.post(gateway.url + CHAT, timeout=10, **chat())
    assert ok.status_code == 200
