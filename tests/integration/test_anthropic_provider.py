"""``provider: anthropic`` against the fake Anthropic upstream over real HTTP: OpenAI-shaped calls
translated to the Messages API, JSON and SSE answers, tool calls, and every failure the provider
must translate (429 with retry-after, 529 overloaded, 401, a hang, a cut stream, an error event)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.errors import (
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.base import Delta, ModelCall
from gateway.providers.http import UpstreamClients
from tests.fakes.anthropic_upstream import FakeAnthropicUpstream, running_fake_anthropic

KEY = "sk-ant-test"
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
def fake() -> Iterator[FakeAnthropicUpstream]:
    with running_fake_anthropic(api_key=KEY, hang_seconds=5, cut_after=2, retry_after=2.0) as server:
        yield server


@pytest.fixture(params=["", "/v1"])
async def provider(
    request: pytest.FixtureRequest, fake: FakeAnthropicUpstream
) -> AsyncIterator[AnthropicProvider]:
    """``base_url`` with or without ``/v1`` (both are how people write it)."""
    fake.reset()
    clients = UpstreamClients(connect_s=1.0)
    yield AnthropicProvider(
        name="claude",
        base_url=fake.base_url + request.param,
        api_key=KEY,
        http=clients.wire,
        is_local=False,
        timeout_s=1.0,
        connect_s=1.0,
        max_output_tokens=321,
    )
    await clients.aclose()


def _call(text: str, model: str = "claude-sonnet-4-5", **params: Any) -> ModelCall:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    return ModelCall(model=model, messages=messages, params=params)


async def _drain(provider: AnthropicProvider, call: ModelCall) -> list[Delta]:
    return [delta async for delta in provider.stream(call)]


async def test_complete_translates_both_ways(
    provider: AnthropicProvider, fake: FakeAnthropicUpstream
) -> None:
    completion = await provider.complete(_call("hello there", temperature=0, stop=["zzz"]))
    assert completion.choices[0].content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "claude-sonnet-4-5"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens == 3
    sent = fake.requests_to("/v1/messages")[-1]
    assert sent.header("x-api-key") == KEY and sent.header("anthropic-version") == "2023-06-01"
    assert sent.header("authorization") is None
    assert sent.body == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
        "max_tokens": 321,  # the model's max_output_tokens when the client set none
        "system": "be brief",
        "temperature": 0.0,
        "stop_sequences": ["zzz"],
    }


async def test_stream_text_and_tool_calls(provider: AnthropicProvider) -> None:
    deltas = await _drain(provider, _call("stream this please", max_tokens=2))
    assert "".join(d.content or "" for d in deltas) == "echo: stream "
    assert deltas[-1].finish_reason == "length" and deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens == 2
    calls = await _drain(provider, _call("weather in Seoul", tools=TOOLS))
    pieces = [call for d in calls for call in d.tool_calls or ()]
    assert pieces[0]["id"].startswith("toolu_") and pieces[0]["function"]["name"] == "get_weather"
    assert "".join(p["function"]["arguments"] for p in pieces) == '{"location":"Seoul"}'
    assert calls[-1].finish_reason == "tool_calls"
    answer = await provider.complete(_call("weather in Seoul", tools=TOOLS, tool_choice="required"))
    assert answer.choices[0].tool_calls[0]["function"]["arguments"] == '{"location":"Seoul"}'  # type: ignore[index]


async def test_prompt_cache_tokens(provider: AnthropicProvider) -> None:
    call = ModelCall(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "cache me"}],
        params={
            "extra": {"system": [{"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}]}
        },
    )
    first = await provider.complete(call)
    second = await provider.complete(call)
    assert first.usage.cached_tokens == 0 and first.usage.prompt_tokens > 1000  # the write counts as input
    assert second.usage.cached_tokens == 1000 and second.usage.prompt_tokens == first.usage.prompt_tokens


async def test_status_errors(provider: AnthropicProvider, fake: FakeAnthropicUpstream) -> None:
    with pytest.raises(ProviderRateLimited) as limited:
        await provider.complete(_call("x", model="fake-429"))
    assert limited.value.retry_after == 2.0 and limited.value.retryable
    with pytest.raises(ProviderUnavailable) as overloaded:
        await _drain(provider, _call("x", model="fake-529"))
    assert overloaded.value.upstream_status == 529 and overloaded.value.retryable
    with pytest.raises(ProviderBadResponse) as denied:
        await provider.complete(_call("x", model="fake-401"))
    assert not denied.value.retryable and "authentication_error" in denied.value.message


async def test_hang_cut_and_error_event(provider: AnthropicProvider) -> None:
    with pytest.raises(ProviderTimeout):
        await provider.complete(_call("x", model="fake-hang"))
    with pytest.raises(ProviderUnavailable):
        await _drain(provider, _call("one two three four five", model="fake-cut"))
    seen: list[Delta] = []
    with pytest.raises(ProviderUnavailable) as failed:
        async for delta in provider.stream(_call("one two three", model="fake-midstream")):
            seen.append(delta)
    assert seen and seen[0].content == "echo: "  # the error came after text was relayed
    assert "overloaded_error" in failed.value.message
