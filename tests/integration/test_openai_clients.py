"""The official openai SDK and LangChain's ChatOpenAI, pointed at the real gateway, work unchanged."""

from __future__ import annotations

import httpx
import openai
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI

from tests.support.gateway_proc import GatewayProcess


def _client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.openai_base_url, api_key="unused", max_retries=0)


def test_sync_non_streamed_answer_usage_and_headers(gateway: GatewayProcess) -> None:
    raw = _client(gateway).chat.completions.with_raw_response.create(
        model="mock-fast",
        messages=[{"role": "user", "content": "hello gateway"}],
        extra_headers={"x-request-id": "req-abc-123"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "mock-fast says: hello gateway"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 6
    # The id that keys usage, quotas and the response id is the server's; the client's is echoed.
    assert raw.headers["x-client-request-id"] == "req-abc-123"
    assert raw.headers["x-request-id"] != "req-abc-123" and len(raw.headers["x-request-id"]) == 32
    assert completion.id == f"chatcmpl-{raw.headers['x-request-id']}"
    assert raw.headers["x-prism-model"] == "mock-fast"
    assert "model=mock-fast" in raw.headers["x-prism-route"]
    assert "x-prism-fallback" not in raw.headers


def test_sync_stream_with_include_usage(gateway: GatewayProcess) -> None:
    stream = _client(gateway).chat.completions.create(
        model="mock-fast",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "mock-fast says: stream me please"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


async def test_async_client_streamed_and_not(gateway: GatewayProcess) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key="unused", max_retries=0)
    async with client:
        completion = await client.chat.completions.create(
            model="mock-smart",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "async hello"}],
        )
        assert completion.choices[0].message.content == "mock-smart says: async hello"
        stream = await client.chat.completions.create(
            model="mock-smart", messages=[{"role": "user", "content": "async stream"}], stream=True
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        assert "".join(pieces) == "mock-smart says: async stream"
        assert len(pieces) > 2


def test_streamed_headers_and_sse_framing(gateway: GatewayProcess) -> None:
    body = {"model": "mock-fast", "stream": True, "messages": [{"role": "user", "content": "frames"}]}
    with httpx.stream("POST", f"{gateway.openai_base_url}/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-prism-model"] == "mock-fast"
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_tools_response_format_and_stop_pass_through(gateway: GatewayProcess) -> None:
    client = _client(gateway)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "weather",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="mock-fast", messages=[{"role": "user", "content": "call get_weather for Seoul"}], tools=tools
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert completion.choices[0].finish_reason == "tool_calls"
    follow_up = client.chat.completions.create(
        model="mock-fast",
        messages=[
            {"role": "user", "content": "call get_weather for Seoul"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
        tools=tools,
    )
    assert "sunny, 21C" in (follow_up.choices[0].message.content or "")
    as_json = client.chat.completions.create(
        model="mock-fast",
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "json please"}],
    )
    assert as_json.choices[0].message.content.startswith('{"answer":')  # type: ignore[union-attr]
    stopped = client.chat.completions.create(
        model="mock-fast", stop=["says"], messages=[{"role": "user", "content": "stop early"}]
    )
    assert stopped.choices[0].message.content == "mock-fast "
    short = client.chat.completions.create(
        model="mock-fast", max_tokens=2, messages=[{"role": "user", "content": "a long answer please"}]
    )
    assert short.choices[0].finish_reason == "length"


def test_langchain_chat_openai_invoke_and_stream(gateway: GatewayProcess) -> None:
    chat = ChatOpenAI(
        model="mock-fast",
        base_url=gateway.openai_base_url,
        api_key="unused",  # type: ignore[arg-type]
        max_retries=0,
        stream_usage=True,
    )
    answer = chat.invoke("hi from langchain")
    assert answer.content == "mock-fast says: hi from langchain"
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0
    chunks = list(chat.stream("stream from langchain"))
    assert "".join(str(c.content) for c in chunks) == "mock-fast says: stream from langchain"
    usage = [c.usage_metadata for c in chunks if isinstance(c, AIMessageChunk) and c.usage_metadata]
    assert usage and usage[-1]["output_tokens"] > 0


def test_models_endpoint(gateway: GatewayProcess) -> None:
    models = {m.id for m in _client(gateway).models.list()}
    assert {"mock-fast", "mock-smart", "auto"} <= models
    with pytest.raises(openai.NotFoundError):
        _client(gateway).models.retrieve("does-not-exist")


def test_health_ready_metrics(gateway: GatewayProcess) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway.url}/readyz").status_code == 200
    _client(gateway).chat.completions.create(model="mock-fast", messages=[{"role": "user", "content": "m"}])
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'prism_requests_total{model="mock-fast",route="/v1/chat/completions",status="200"}' in text
    assert "prism_request_duration_seconds_bucket" in text
