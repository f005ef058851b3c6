"""``/v1/messages`` with the official ``anthropic`` SDK (and LangChain's ChatAnthropic) as the client,
in front of the mock provider, ``auto`` and a fake Anthropic upstream speaking the real wire protocol:
Claude-Code-shaped traffic (system blocks with cache_control, tools, tool_use/tool_result, images,
stop sequences, metadata, beta headers), streaming events, errors in Anthropic's envelope, keys
through ``x-api-key``, and one usage row per request in the database."""

from __future__ import annotations

import base64
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest
import yaml

from tests.fakes.anthropic_upstream import FakeAnthropicUpstream, running_fake_anthropic
from tests.support.gateway_proc import ROOT, GatewayProcess, start_gateway

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "anthropic-admin@example.com"
ADMIN_PASSWORD = "Anthropic-admin-passphrase-7"
UPSTREAM_KEY = "sk-ant-upstream-secret"
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")).decode()
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a place",
        "input_schema": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    }
]


def _config(fake: FakeAnthropicUpstream) -> str:
    config = yaml.safe_load((ROOT / "config" / "prism.yaml").read_text())
    upstream = {
        "provider": "anthropic",
        "base_url": fake.base_url,
        "api_key_env": "PRISM_TEST_ANTHROPIC_KEY",
        "context_window": 200_000,  # Claude's limits: Claude Code asks for max_tokens up to 32000
        "max_output_tokens": 64_000,
    }
    config["models"] = {name: config["models"][name] for name in ("mock-fast", "mock-smart")} | {
        "claude": {
            **upstream,
            "model": "claude-sonnet-4-5",
            "price_input_per_mtok": 3.0,
            "price_output_per_mtok": 15.0,
            "price_cached_input_per_mtok": 0.3,  # Anthropic: reads 0.1×, 5-minute writes 1.25× input
            "price_cache_write_per_mtok": 3.75,
        },
        "claude-external": {**upstream, "model": "claude-sonnet-4-5", "local": False},
        "claude-529": {**upstream, "model": "fake-529"},
        "claude-busy": {**upstream, "model": "fake-529"},
        "claude-midstream": {**upstream, "model": "fake-midstream"},
        "claude-401": {**upstream, "model": "fake-401"},
        "claude-thinker": {**upstream, "model": "claude-sonnet-4-5", "timeouts": {"first_token_s": 1.0}},
    }
    config["fallbacks"] = {"claude-busy": ["mock-smart"]}
    config["retry"] = {
        "deadline_s": 20,
        "max_attempts": 2,
        "base_delay_s": 0.01,
        "max_delay_s": 0.05,
        "jitter": 0,
    }
    config["circuit_breaker"] = {"failure_threshold": 50, "cooldown_s": 1, "max_cooldown_s": 2}
    return yaml.safe_dump(config)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicUpstream]:
    with running_fake_anthropic(api_key=UPSTREAM_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, fake: FakeAnthropicUpstream) -> Iterator[GatewayProcess]:
    process = start_gateway(
        tmp_path_factory.mktemp("anthropic"),
        config=_config(fake),
        env={
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_API_KEY_CACHE_TTL_S": "0",
            "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05",
            "PRISM_TEST_ANTHROPIC_KEY": UPSTREAM_KEY,
        },
    )
    yield process
    process.stop()


def _key(gw: GatewayProcess, **limits: object) -> str:
    login = httpx.post(gw.url + "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert login.status_code == 200, login.text
    r = httpx.post(
        gw.url + "/api/keys",
        json={"name": f"anthropic-{uuid.uuid4().hex[:6]}", **limits},
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return _key(gw)


_CLIENTS: dict[tuple[str, str, bool], anthropic.Anthropic] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_clients() -> Iterator[None]:
    """One SDK client per key, closed at the end (an unclosed pool warns when collected)."""
    yield
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


def _client(gw: GatewayProcess, key: str, *, bearer: bool = False) -> anthropic.Anthropic:
    client = _CLIENTS.get((gw.url, key, bearer))
    if client is None:
        credentials = {"auth_token": key} if bearer else {"api_key": key}
        client = _CLIENTS[(gw.url, key, bearer)] = anthropic.Anthropic(
            base_url=gw.url, max_retries=0, **credentials
        )
    return client


def _rows(gw: GatewayProcess, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Usage rows by request id, once the recorder flushed them all (bounded wait)."""
    database = gw.log_path.parent / f"prism-{gw.port}.db"
    deadline = time.monotonic() + 15
    while True:
        with sqlite3.connect(database) as conn:
            conn.row_factory = sqlite3.Row
            marks = ",".join("?" * len(ids))
            found = conn.execute(f"SELECT * FROM usage_logs WHERE request_id IN ({marks})", ids).fetchall()
        if len(found) >= len(ids) or time.monotonic() > deadline:
            return {row["request_id"]: dict(row) for row in found}
        time.sleep(0.05)


def _claude_code_request(model: str, **extra: Any) -> dict[str, Any]:
    """The shape Claude Code sends: system blocks with cache_control, tools, metadata, stop sequences."""
    return {
        "model": model,
        "max_tokens": 200,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {"type": "text", "text": "Answer briefly.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>context</system-reminder>"},
                    {"type": "text", "text": "summarise the repo", "cache_control": {"type": "ephemeral"}},
                ],
            }
        ],
        "tools": TOOLS,
        "metadata": {"user_id": "user_abc_account_123_session_xyz"},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 1,
        **extra,
    }


def test_claude_code_request_reaches_an_anthropic_upstream_unchanged(
    gw: GatewayProcess, key: str, fake: FakeAnthropicUpstream
) -> None:
    fake.reset()
    body = _claude_code_request("claude", top_k=40)
    sampling = {"temperature": body.pop("temperature"), "top_k": body.pop("top_k")}  # not SDK kwargs (2.x)
    raw = _client(gw, key).messages.with_raw_response.create(
        **body,
        extra_body=sampling,
        extra_headers={"anthropic-beta": "claude-code-20250219,prompt-caching-2024-07-31"},
    )
    message = raw.parse()
    sent = fake.requests_to("/v1/messages")[-1]
    assert sent.body == {**body, **sampling, "model": "claude-sonnet-4-5"}  # native, the upstream model id
    assert sent.header("x-api-key") == UPSTREAM_KEY  # the upstream's key, never the client's Prism key
    assert sent.header("anthropic-beta") == "claude-code-20250219,prompt-caching-2024-07-31"
    assert sent.header("anthropic-version") == raw.http_request.headers["anthropic-version"]
    assert (
        message.content[0].type == "text"
        and message.content[0].text == "echo: <system-reminder>context</system-reminder> summarise the repo"
    )
    assert message.stop_reason == "end_turn" and message.model == "claude-sonnet-4-5"
    assert message.id == f"msg_{raw.headers['x-request-id']}"
    assert message.usage.cache_creation_input_tokens == 1000
    again = _client(gw, key).messages.create(
        **body, extra_body=sampling
    )  # the same prefix: a prompt-cache read upstream
    assert again.usage.cache_read_input_tokens == 1000 and again.usage.cache_creation_input_tokens == 0
    again_id = again._request_id  # the SDK reads our ``request-id`` header
    assert again_id is not None
    rows = _rows(gw, [raw.headers["x-request-id"], again_id])
    assert rows[again_id]["cached_tokens"] == 1000  # the upstream's prompt-cache read, in the ledger
    row = rows[raw.headers["x-request-id"]]
    assert (row["model_requested"], row["model_served"], row["status"]) == ("claude", "claude", "ok")
    prompt = message.usage.input_tokens + 1000
    assert row["prompt_tokens"] == prompt and row["cached_tokens"] == 0
    fresh = message.usage.input_tokens
    # The cache write is priced at the write rate, the read at the read rate (exact cost accounting).
    assert row["cost_usd"] == pytest.approx(
        (fresh * 3.0 + 1000 * 3.75 + message.usage.output_tokens * 15.0) / 1e6
    )
    read = rows[again_id]
    assert read["cost_usd"] == pytest.approx(
        (again.usage.input_tokens * 3.0 + 1000 * 0.3 + again.usage.output_tokens * 15.0) / 1e6
    )


def test_thinking_and_stop_sequence_come_back_native(gw: GatewayProcess, key: str) -> None:
    client = _client(gw, key)
    message = client.messages.create(
        model="claude",
        max_tokens=100,
        thinking={"type": "enabled", "budget_tokens": 1024},
        stop_sequences=["STOP"],
        messages=[{"role": "user", "content": "one two STOP three"}],
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].signature == "sig-fake-1"  # type: ignore[union-attr]
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "STOP"
    with client.messages.stream(
        model="claude",
        max_tokens=100,
        stop_sequences=["STOP"],
        messages=[{"role": "user", "content": "a b STOP c"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "STOP"
    assert final.content[0].text == "echo: a b "  # type: ignore[union-attr]
    # streamed with thinking and a tool call: the thinking block (with its signature, which the next
    # turn must send back) arrives in place, before the tool call
    with client.messages.stream(
        model="claude",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather in Jeju"}],
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "tool_use"]
    assert final.content[0].thinking == "Let me think." and final.content[0].signature == "sig-fake-1"  # type: ignore[union-attr]
    follow_up = client.messages.create(
        model="claude",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "weather in Jeju"},
            {
                "role": "assistant",
                "content": [block.model_dump(exclude_none=True) for block in final.content],
            },  # type: ignore[misc]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": final.content[1].id, "content": "windy"}],
            },  # type: ignore[union-attr]
        ],
    )
    assert follow_up.content[-1].text == "tool result: windy"  # type: ignore[union-attr]


def test_masked_prompt_is_translated_not_passed_through(
    gw: GatewayProcess, key: str, fake: FakeAnthropicUpstream
) -> None:
    """An external model's policy masks PII: the native body (with the address) is never sent."""
    fake.reset()
    message = _client(gw, key).messages.create(
        model="claude-external",
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "mail jane.doe@example.com about it"}],
    )
    sent = fake.requests_to("/v1/messages")[-1].body
    assert "jane.doe@example.com" not in str(sent)
    assert sent["system"] == "be brief" and sent["max_tokens"] == 100
    assert "jane.doe@example.com" in message.content[0].text  # type: ignore[union-attr]  # un-masked answer


@pytest.mark.parametrize("model", ["mock-fast", "claude", "auto"])
def test_stream_event_sequence(gw: GatewayProcess, key: str, model: str) -> None:
    body = {
        "model": model,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "hi there"}],
    }
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", gw.url + "/v1/messages", json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        names = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
    assert names[:2] == ["message_start", "ping"]
    assert names[2] == "content_block_start" and "content_block_delta" in names
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    with _client(gw, key).messages.stream(**{k: v for k, v in body.items() if k != "stream"}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.endswith("hi there") and final.stop_reason == "end_turn" and final.usage.output_tokens > 0


@pytest.mark.parametrize(
    ("model", "prompt"), [("mock-fast", "call get_weather for Seoul"), ("claude", "weather in Seoul")]
)
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_round_trip(gw: GatewayProcess, key: str, model: str, prompt: str, streamed: bool) -> None:
    client = _client(gw, key)
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    if streamed:
        with client.messages.stream(model=model, max_tokens=200, tools=TOOLS, messages=messages) as stream:  # type: ignore[arg-type]
            first = stream.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)  # type: ignore[arg-type]
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict)
    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}],
        },
    ]
    second = client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)  # type: ignore[arg-type]
    assert second.stop_reason == "end_turn"
    assert "sunny, 21C" in second.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("model", ["mock-fast", "claude"])
def test_image_blocks(gw: GatewayProcess, key: str, fake: FakeAnthropicUpstream, model: str) -> None:
    fake.reset()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    message = _client(gw, key).messages.create(
        model=model,
        max_tokens=100,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "what is this"}]}],
    )
    assert "what is this" in message.content[0].text  # type: ignore[union-attr]
    if model == "claude":
        assert fake.requests_to("/v1/messages")[-1].body["messages"][0]["content"][0] == image


def test_count_tokens(gw: GatewayProcess, key: str) -> None:
    client = _client(gw, key)
    small = client.messages.count_tokens(model="mock-fast", messages=[{"role": "user", "content": "hello"}])
    large = client.messages.count_tokens(
        model="claude",
        system="be brief",
        tools=TOOLS,
        messages=[{"role": "user", "content": "hello " * 50}],  # type: ignore[arg-type]
    )
    assert 0 < small.input_tokens < large.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "x"}])


def _post(gw: GatewayProcess, content: bytes | dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    if isinstance(content, dict):
        return httpx.post(gw.url + "/v1/messages", json=content, headers=headers, timeout=30)
    return httpx.post(
        gw.url + "/v1/messages",
        content=content,
        headers={**headers, "content-type": "application/json"},
        timeout=30,
    )


def test_bad_input_is_a_4xx_in_anthropic_shape(gw: GatewayProcess, key: str) -> None:
    headers = {"x-api-key": key}
    good = {"model": "mock-fast", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    cases: list[tuple[bytes | dict[str, Any], int]] = [
        (b"{not json", 400),
        (b"[]", 400),
        ({k: v for k, v in good.items() if k != "max_tokens"}, 400),
        ({**good, "max_tokens": 0}, 400),
        ({**good, "messages": []}, 400),
        ({**good, "messages": [{"role": "system", "content": "x"}]}, 400),
        ({**good, "messages": [{"role": "user", "content": "nul \u0000 byte"}]}, 400),
        (
            {
                **good,
                "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}],
            },
            400,
        ),
        (
            {
                **good,
                "messages": [
                    {"role": "user", "content": [{"type": "tool_use", "id": "x", "name": "y", "input": {}}]}
                ],
            },
            400,
        ),
        ({**good, "messages": [{"role": "user", "content": [{"text": "no type"}]}]}, 400),
        ({**good, "temperature": 1.5}, 400),
        ({**good, "tool_choice": {"type": "tool"}, "tools": TOOLS}, 400),
        ({**good, "model": "no-such-model"}, 404),
        (
            b'{"model": "mock-fast", "max_tokens": 10, "messages": [{"role": "user", "content": "\\u0000"}]}',
            400,
        ),
        (b"\xff\xfe", 400),
    ]
    for content, status in cases:
        response = _post(gw, content, headers)
        assert response.status_code == status, (content, response.text)
        body = response.json()
        assert body["type"] == "error", body
        expected = "not_found_error" if status == 404 else "invalid_request_error"
        assert body["error"]["type"] == expected and body["error"]["message"], body
    too_big = _post(gw, b'{"x": "' + b"a" * 11_000_000 + b'"}', headers)
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "request_too_large"


def test_auth_permission_and_rate_limit_errors(gw: GatewayProcess) -> None:
    with pytest.raises(anthropic.AuthenticationError) as denied:
        _client(gw, "sk-prism-wrong").messages.create(
            model="mock-fast", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    narrow = _key(gw, allowed_models=["mock-fast"], rpm_limit=2)
    bearer = _client(gw, narrow, bearer=True)  # Authorization: Bearer
    assert bearer.messages.create(
        model="mock-fast", max_tokens=10, messages=[{"role": "user", "content": "a"}]
    )
    with pytest.raises(anthropic.PermissionDeniedError) as forbidden:
        _client(gw, narrow).messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "b"}]
        )
    assert forbidden.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    with pytest.raises(anthropic.RateLimitError) as limited:
        for _ in range(3):
            _client(gw, narrow).messages.create(
                model="mock-fast", max_tokens=10, messages=[{"role": "user", "content": "c"}]
            )
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert limited.value.response.headers.get("retry-after")


def test_upstream_failures(gw: GatewayProcess, key: str, fake: FakeAnthropicUpstream) -> None:
    client = _client(gw, key)
    fake.reset()
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(model="claude-529", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert (
        overloaded.value.status_code == 503 and overloaded.value.body["error"]["type"] == "overloaded_error"
    )  # type: ignore[index]
    assert fake.per_outcome["529"] == 2  # retried once (max_attempts 2): 529 is retryable
    raw = client.messages.with_raw_response.create(
        model="claude-busy", max_tokens=50, messages=[{"role": "user", "content": "fall back"}]
    )
    assert raw.headers["x-prism-fallback"] == "claude-busy->mock-smart"
    assert raw.parse().content[0].text == "mock-smart says: fall back"  # type: ignore[union-attr]
    with pytest.raises(anthropic.APIStatusError) as misconfigured:
        client.messages.create(model="claude-401", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert misconfigured.value.status_code == 502 and misconfigured.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    with (
        pytest.raises(anthropic.APIStatusError) as cut,
        client.messages.stream(
            model="claude-midstream", max_tokens=50, messages=[{"role": "user", "content": "one two three"}]
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert cut.value.body["error"]["type"] in ("overloaded_error", "api_error")  # type: ignore[index]


def test_one_usage_row_per_request(gw: GatewayProcess, key: str) -> None:
    headers = {"x-api-key": key}
    base = {"max_tokens": 50, "messages": [{"role": "user", "content": "count me"}]}
    answers = [
        _post(gw, {**base, "model": "mock-fast"}, headers),
        _post(gw, {**base, "model": "claude", "stream": True}, headers),
        _post(gw, {**base, "model": "claude-529"}, headers),
        _post(gw, {**base, "model": "claude-midstream", "stream": True}, headers),
        _post(gw, {**base, "model": "no-such-model"}, headers),
        _post(
            gw,
            {"model": "mock-fast", "stream": True, "messages": [{"role": "user", "content": "x"}]},
            headers,
        ),
        _post(gw, b"{not json", headers),
    ]
    ids = [r.headers["x-request-id"] for r in answers]
    rows = _rows(gw, ids)
    assert len(rows) == 7
    summary = [
        (rows[i]["model_requested"], rows[i]["streamed"], rows[i]["status"], rows[i]["http_status"])
        for i in ids
    ]
    assert summary == [
        ("mock-fast", 0, "ok", 200),
        ("claude", 1, "ok", 200),
        ("claude-529", 0, "error", 503),
        ("claude-midstream", 1, "incomplete", 200),
        ("no-such-model", 0, "rejected", 404),
        ("mock-fast", 1, "rejected", 400),  # no max_tokens: refused before the flow, still recorded
        (None, 0, "rejected", 400),
    ]
    assert rows[ids[1]]["prompt_tokens"] > 0 and rows[ids[1]]["completion_tokens"] > 0


def test_openai_client_on_an_anthropic_model(
    gw: GatewayProcess, key: str, fake: FakeAnthropicUpstream
) -> None:
    """``provider: anthropic`` behind /v1/chat/completions: translated to the Messages API and back."""
    fake.reset()
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather in Paris"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"],
                },
            }
            for t in TOOLS
        ],
        "tool_choice": "required",
        "max_tokens": 100,
        "stop": ["END"],
        "user": "u-1",
    }
    response = httpx.post(
        gw.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    sent = fake.requests_to("/v1/messages")[-1].body
    assert sent["system"] == "be brief" and sent["tool_choice"] == {"type": "any"}
    assert sent["stop_sequences"] == ["END"] and sent["metadata"] == {"user_id": "u-1"}
    assert sent["tools"][0]["input_schema"] == TOOLS[0]["input_schema"]


def test_langchain_chat_anthropic(gw: GatewayProcess, key: str) -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_core.messages import HumanMessage, ToolMessage

    chat = ChatAnthropic(model="claude", base_url=gw.url, api_key=key, max_retries=0, max_tokens=100)  # type: ignore[call-arg]
    answer = chat.invoke("hello from langchain")
    assert answer.content == "echo: hello from langchain"
    assert answer.usage_metadata is not None and answer.usage_metadata["input_tokens"] > 0
    chunks = list(chat.stream("stream from langchain"))
    assert "".join(chunk.text for chunk in chunks) == "echo: stream from langchain"
    assert len(chunks) > 2
    tool_call = chat.bind_tools(TOOLS).invoke("weather in Busan")
    assert tool_call.tool_calls[0]["name"] == "get_weather"  # type: ignore[attr-defined]
    # a model that is not Anthropic's, with LangChain's own tool-result round trip
    mock = ChatAnthropic(model="mock-fast", base_url=gw.url, api_key=key, max_retries=0, max_tokens=100)  # type: ignore[call-arg]
    asked = HumanMessage("call get_weather for Busan")
    call = mock.bind_tools(TOOLS).invoke([asked])
    assert call.tool_calls[0]["name"] == "get_weather"  # type: ignore[attr-defined]
    result = ToolMessage("cloudy, 18C", tool_call_id=call.tool_calls[0]["id"])  # type: ignore[attr-defined]
    answer = mock.bind_tools(TOOLS).invoke([asked, call, result])
    assert "cloudy, 18C" in answer.text


def test_database_path_helper_matches_gateway(gw: GatewayProcess) -> None:
    assert (Path(gw.log_path.parent) / f"prism-{gw.port}.db").exists()


def test_cache_only_for_explicitly_deterministic_requests(gw: GatewayProcess, key: str) -> None:
    """Anthropic's default temperature is 1: not cached; ``temperature: 0`` is, and a hit is served
    in Anthropic's shape, JSON or streamed."""
    headers = {"x-api-key": key}
    unique = uuid.uuid4().hex[:8]
    default = {
        "model": "mock-fast",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": f"cache {unique}"}],
    }
    assert [_post(gw, default, headers).headers["x-prism-cache"] for _ in range(2)] == ["bypass", "bypass"]
    # the SDK for all three: the anthropic-version / -beta headers are part of the cache key
    sdk = {**default, "messages": [{"role": "user", "content": f"zero {unique}"}]}
    client = _client(gw, key)
    first, second = (
        client.messages.with_raw_response.create(**sdk, extra_body={"temperature": 0})  # type: ignore[arg-type]
        for _ in range(2)
    )
    assert (first.headers["x-prism-cache"], second.headers["x-prism-cache"]) == ("miss", "hit")
    assert second.parse().content == first.parse().content and second.parse().type == "message"
    with client.messages.stream(**sdk, extra_body={"temperature": 0}) as stream:  # type: ignore[arg-type]
        assert stream.response.headers["x-prism-cache"] == "hit"
        texts = [block.text for block in stream.get_final_message().content]  # type: ignore[union-attr]
    assert texts == [block.text for block in first.parse().content]  # type: ignore[union-attr]


def test_claude_code_query_string_wrong_method_and_metrics(gw: GatewayProcess, key: str) -> None:
    """Claude Code posts to ``/v1/messages?beta=true``; other methods and paths under /v1/messages
    answer in Anthropic's envelope; requests are counted under the route with the model label."""
    body = {"model": "mock-fast", "max_tokens": 20, "messages": [{"role": "user", "content": "cli"}]}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "x-app": "cli"}
    answer = httpx.post(gw.url + "/v1/messages?beta=true", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200 and answer.json()["content"][0]["text"] == "mock-fast says: cli"
    assert answer.headers["request-id"] == answer.headers["x-request-id"]
    counted = httpx.post(gw.url + "/v1/messages/count_tokens?beta=true", json=body, headers=headers)
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
    for method, path, status in (("GET", "/v1/messages", 405), ("POST", "/v1/messages/nope", 404)):
        refused = httpx.request(method, gw.url + path, headers=headers)
        assert refused.status_code == status
        assert refused.json()["type"] == "error" and refused.json()["error"]["message"]
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'prism_requests_total{model="mock-fast",route="/v1/messages",status="200"}' in metrics
    assert (
        'prism_requests_total{model="claude",route="/v1/messages",status="200"}' in metrics
        or "claude" in metrics
    )


def _events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs with the ids that differ per call blanked, and a tool call's
    ``input_json_delta``s joined: the output guard scans arguments through a held-back window
    (docs/guardrails.md), which may regroup them (the joined JSON is the same)."""
    names, out = "", []
    for line in response.iter_lines():
        if line.startswith("event: "):
            names = line[7:]
        elif line.startswith("data: "):
            data = orjson.loads(line[6:])
            if data.get("type") == "message_start":
                data["message"]["id"] = "msg"
            block = data.get("content_block") or {}
            if "id" in block:
                block["id"] = "toolu"
            delta = data.get("delta") or {}
            last = out[-1][1] if out else {}
            if (
                delta.get("type") == "input_json_delta"
                and (last.get("delta") or {}).get("type") == delta["type"]
            ):
                last["delta"]["partial_json"] += delta["partial_json"]
                continue
            out.append((names, data))
    return out


@pytest.mark.parametrize("prompt", ["tell me a story", "weather in Jeju"])
def test_an_anthropic_stream_reaches_the_client_as_sent(
    gw: GatewayProcess, key: str, fake: FakeAnthropicUpstream, prompt: str
) -> None:
    """Anthropic in, Anthropic out: the client receives the upstream's events, in its order and
    grouping (thinking, text and tool-use blocks, usage, model), apart from the message id."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2000,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": TOOLS,
        "messages": [{"role": "user", "content": prompt}],
    }
    version = {"anthropic-version": "2023-06-01"}
    with httpx.stream(
        "POST", fake.base_url + "/v1/messages", json=body, headers={"x-api-key": UPSTREAM_KEY, **version}
    ) as direct:
        upstream = _events(direct)
    with httpx.stream(
        "POST",
        gw.url + "/v1/messages",
        json={**body, "model": "claude"},
        headers={"x-api-key": key, **version},
    ) as relayed:
        received = _events(relayed)
    assert received == upstream


@pytest.mark.parametrize("prompt", ["tell me a story", "weather in Jeju"])
def test_an_anthropic_message_reaches_the_client_as_sent(
    gw: GatewayProcess, key: str, fake: FakeAnthropicUpstream, prompt: str
) -> None:
    """The JSON answer, field by field, is the upstream's (thinking, tool use, stop, usage, model,
    unknown fields), apart from the message id (the usage record's) and the fake's random tool id."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": TOOLS,
        "messages": [{"role": "user", "content": prompt}],
    }
    version = {"anthropic-version": "2023-06-01"}
    upstream = httpx.post(
        fake.base_url + "/v1/messages", json=body, headers={"x-api-key": UPSTREAM_KEY, **version}
    )
    relayed = httpx.post(
        gw.url + "/v1/messages",
        json={**body, "model": "claude"},
        headers={"x-api-key": key, **version},
        timeout=30,
    )
    sent, got = upstream.json(), relayed.json()
    assert got.pop("id") == f"msg_{relayed.headers['x-request-id']}"
    sent.pop("id")
    for message in (sent, got):
        for block in message["content"]:
            if block["type"] == "tool_use":
                block["id"] = "toolu"
    assert got == sent


def test_auto_without_a_user_turn(gw: GatewayProcess, key: str) -> None:
    """Smart routing labels what there is when no user turn exists (an assistant prefill): it was a
    500 on both API families (found by tests/fuzz/test_anthropic_fuzz.py)."""
    prefill = [{"role": "assistant", "content": "Sure"}]
    messages = httpx.post(
        gw.url + "/v1/messages",
        json={"model": "auto", "max_tokens": 20, "messages": prefill},
        headers={"x-api-key": key},
        timeout=30,
    )
    chat = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "auto", "messages": prefill},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert (messages.status_code, chat.status_code) == (200, 200), (messages.text, chat.text)
    assert "intent=" in messages.headers["x-prism-route"]


def test_models_list_in_anthropic_shape(gw: GatewayProcess, key: str) -> None:
    """``anthropic-version`` on ``/v1/models``: Anthropic's page shape (the OpenAI SDK sends none)."""
    client = _client(gw, key)
    names = [model.id for model in client.models.list()]
    assert {"mock-fast", "claude", "auto"} <= set(names)
    model = client.models.retrieve("claude")
    assert (model.id, model.type, model.display_name) == ("claude", "model", "claude")
    assert model.created_at.year >= 2024
    openai_shape = httpx.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
    assert openai_shape["object"] == "list"


def test_a_long_think_is_not_a_first_token_timeout(
    gw: GatewayProcess, key: str, fake: FakeAnthropicUpstream
) -> None:
    """Thinking events count as the stream's first token: a model that thinks longer than the
    model's ``first_token_s`` (1 s here; the fake spends 1.2 s in its thinking block) still answers."""
    fake.reset()
    fake.configure(chunk_delay=0.6)
    try:
        with _client(gw, key).messages.stream(
            model="claude-thinker",
            max_tokens=2000,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "think first"}],
        ) as stream:
            final = stream.get_final_message()
    finally:
        fake.configure(chunk_delay=0.0)
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert fake.per_outcome["ok"] == 1  # one attempt: no first-token timeout, no retry


def test_claude_code_stream_with_its_max_tokens(
    gw: GatewayProcess, key: str, fake: FakeAnthropicUpstream
) -> None:
    """Claude Code streams with ``max_tokens: 32000``: fine on a model configured with Claude's limits,
    a 400 naming the limit on one with smaller ones (as Anthropic answers)."""
    fake.reset()
    body = _claude_code_request("claude", max_tokens=32000)
    sampling = {"temperature": body.pop("temperature")}
    with _client(gw, key).messages.stream(**body, extra_body=sampling) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert fake.requests_to("/v1/messages")[-1].body["max_tokens"] == 32000
    too_many = _post(
        gw,
        {"model": "mock-fast", "max_tokens": 32000, "messages": [{"role": "user", "content": "x"}]},
        {"x-api-key": key},
    )
    assert too_many.status_code == 400 and "max_tokens" in too_many.json()["error"]["message"]
