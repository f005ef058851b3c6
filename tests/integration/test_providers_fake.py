"""The OpenAI and Ollama adapters against fake upstreams speaking the real wire protocols over HTTP:
answers, SSE/NDJSON streams, tool calls, 429 with Retry-After, 5xx, hangs and streams cut mid-way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.errors import ProviderRateLimited, ProviderTimeout, ProviderUnavailable
from gateway.providers.base import Delta, ModelCall, Provider
from gateway.providers.http import UpstreamClients
from gateway.providers.ollama import OllamaProvider
from gateway.providers.openai import OpenAIProvider
from gateway.providers.openai_wire import OpenAIWireProvider
from tests.fakes import FakeOllamaUpstream, FakeOpenAIUpstream, running_fake_ollama, running_fake_openai

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a place",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAIUpstream]:
    with running_fake_openai(hang_seconds=5, cut_after=2, retry_after=1.0) as fake:
        yield fake


@pytest.fixture(scope="module")
def fake_ollama() -> Iterator[FakeOllamaUpstream]:
    with running_fake_ollama(hang_seconds=5, cut_after=2) as fake:
        yield fake


@pytest.fixture(params=["wire", "langchain"])
async def openai_provider(
    request: pytest.FixtureRequest, fake_openai: FakeOpenAIUpstream
) -> AsyncIterator[Provider]:
    """Both OpenAI adapters: the default wire client and ``client: langchain``."""
    fake_openai.reset()
    clients = UpstreamClients(connect_s=1.0)
    options: dict[str, Any] = {
        "name": "up",
        "base_url": fake_openai.openai_base_url,
        "api_key": "sk-test",
        "is_local": False,
        "timeout_s": 1.0,
        "connect_s": 1.0,
    }
    if request.param == "wire":
        yield OpenAIWireProvider(http=clients.wire, **options)
    else:
        yield OpenAIProvider(http_client=clients.openai_client, **options)
    await clients.aclose()


@pytest.fixture
async def ollama_provider(fake_ollama: FakeOllamaUpstream) -> AsyncIterator[OllamaProvider]:
    fake_ollama.reset()
    provider = OllamaProvider(name="local", base_url=fake_ollama.base_url, timeout_s=1.0)
    yield provider
    await provider.aclose()


def _call(model: str, text: str, **params: Any) -> ModelCall:
    return ModelCall(model=model, messages=[{"role": "user", "content": text}], params=params)


async def _drain(provider: Provider, call: ModelCall) -> list[Delta]:
    return [delta async for delta in provider.stream(call)]


@pytest.fixture(params=["openai", "ollama"])
def provider(
    request: pytest.FixtureRequest, openai_provider: Provider, ollama_provider: OllamaProvider
) -> Provider:
    return openai_provider if request.param == "openai" else ollama_provider


async def test_complete_and_stream(provider: Provider) -> None:
    completion = await provider.complete(_call("llama", "hello there", temperature=0, max_tokens=50, seed=7))
    assert completion.choices[0].content == "echo: hello there"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    deltas = await _drain(provider, _call("llama", "stream this please"))
    assert "".join(d.content or "" for d in deltas) == "echo: stream this please"
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None


async def test_stream_is_relayed_as_it_arrives(
    openai_provider: Provider, fake_openai: FakeOpenAIUpstream
) -> None:
    """Spaced chunks come out one delta each, each before the next one was sent: nothing waits for
    more. (Chunks that arrive in one read may come out merged; see the test below.)"""
    await _drain(openai_provider, _call("llama", "warm up"))  # the first call also builds the client
    fake_openai.config.chunk_delay = 0.05
    seen: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    async for delta in openai_provider.stream(_call("llama", "one two three four")):
        if delta.content:
            seen.append((loop.time() - started, delta.content))
    assert "".join(text for _, text in seen) == "echo: one two three four"
    assert len(seen) >= 4
    # the first piece was relayed long before the last one was even sent
    assert seen[-1][0] - seen[0][0] >= 0.05 * (len(seen) - 2)


async def test_wire_stream_merges_what_arrived_together(fake_openai: FakeOpenAIUpstream) -> None:
    """Text deltas already buffered together leave the wire adapter as one delta (one frame, one guard
    scan, one write downstream); the text, the finish reason and the usage are unchanged."""
    fake_openai.reset()
    clients = UpstreamClients(connect_s=1.0)
    provider = OpenAIWireProvider(
        http=clients.wire,
        name="up",
        base_url=fake_openai.openai_base_url,
        api_key="sk-test",
        is_local=False,
        timeout_s=1.0,
        connect_s=1.0,
    )
    try:
        text = "alpha beta gamma delta epsilon zeta eta theta"
        deltas = await _drain(provider, _call("llama", text))
    finally:
        await clients.aclose()
    content = [d.content for d in deltas if d.content]
    assert "".join(content) == f"echo: {text}"
    assert len(content) < len(text.split())  # the fake writes a frame per word, all at once
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens > 0


async def test_tool_calls_both_ways(provider: Provider) -> None:
    call = _call("llama", "what is the weather in Paris", tools=TOOLS)
    completion = await provider.complete(call)
    tool_call = completion.choices[0].tool_calls[0]  # type: ignore[index]
    assert tool_call["function"]["name"] == "get_weather"
    assert '"Paris"' in tool_call["function"]["arguments"]
    assert completion.choices[0].finish_reason == "tool_calls"
    deltas = await _drain(provider, call)
    assert any(d.tool_calls for d in deltas)
    assert deltas[-1].finish_reason == "tool_calls"


async def test_parameters_reach_the_openai_upstream(
    openai_provider: Provider, fake_openai: FakeOpenAIUpstream
) -> None:
    await openai_provider.complete(
        _call(
            "gpt",
            "x",
            temperature=0.2,
            top_p=0.9,
            max_tokens=12,
            seed=3,
            stop=["\n"],
            response_format={"type": "json_object"},
            user="u-1",
            tools=TOOLS,
        )
    )
    request = fake_openai.last_request
    assert request is not None and request.bearer == "sk-test"
    body = request.body
    assert (
        body["temperature"] == 0.2 and body["top_p"] == 0.9 and body["seed"] == 3 and body["stop"] == ["\n"]
    )
    assert body["response_format"] == {"type": "json_object"} and body["user"] == "u-1"
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body.get("max_tokens") == 12 or body.get("max_completion_tokens") == 12


async def test_rate_limit_carries_retry_after(openai_provider: Provider) -> None:
    with pytest.raises(ProviderRateLimited) as caught:
        await openai_provider.complete(_call("fake-429", "x"))
    assert caught.value.retry_after == pytest.approx(1.0)


@pytest.mark.parametrize("mode", ["500", "503"])
async def test_server_errors_are_unavailable(provider: Provider, mode: str) -> None:
    with pytest.raises(ProviderUnavailable):
        await provider.complete(_call(f"fake-{mode}", "x"))
    with pytest.raises(ProviderUnavailable):
        await _drain(provider, _call(f"fake-{mode}", "x"))


async def test_hang_before_first_byte_times_out(provider: Provider) -> None:
    with pytest.raises(ProviderTimeout):
        await provider.complete(_call("fake-hang", "x"))


async def test_stream_cut_mid_way_raises_after_the_relayed_part(provider: Provider) -> None:
    received: list[Delta] = []
    with pytest.raises((ProviderUnavailable, ProviderTimeout)):
        async for delta in provider.stream(_call("fake-cut", "a long enough answer to be cut in the middle")):
            received.append(delta)
    assert any(d.content for d in received)
    assert not any(d.finish_reason for d in received)
