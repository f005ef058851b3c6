"""Tests of the fake upstreams themselves, driven by the official clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionToolParam

from tests.fakes import FakeOllamaUpstream, FakeOpenAIUpstream, running_fake_ollama, running_fake_openai

WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "unit"],
        },
    },
}


_CLIENTS: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def _client(fake: FakeOpenAIUpstream, timeout: float = 5) -> OpenAI:
    client = OpenAI(base_url=fake.openai_base_url, api_key="sk-test-123", max_retries=0, timeout=timeout)
    _CLIENTS.append(client)
    return client


def test_openai_non_streamed_echo_and_recording() -> None:
    with running_fake_openai() as fake:
        resp = _client(fake).chat.completions.create(
            model="fake-gpt",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
            seed=7,
            stop=["zzz"],
            response_format={"type": "text"},
        )
        assert resp.choices[0].message.content == "echo: hello there"
        assert resp.choices[0].finish_reason == "stop"
        assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
        assert resp.system_fingerprint and resp.model == "fake-gpt"
        assert resp.usage is not None
        assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
        rec = fake.last_request
        assert rec is not None and rec.path == "/v1/chat/completions"
        assert rec.bearer == "sk-test-123"
        assert rec.header("Authorization") == "Bearer sk-test-123"
        assert rec.body["seed"] == 7 and rec.body["stop"] == ["zzz"]
        assert fake.total_requests == 1 and fake.per_model["fake-gpt"] == 1
        stats = httpx.get(fake.base_url + "/_stats").json()
        assert stats["total_requests"] == 1 and stats["per_model"] == {"fake-gpt": 1}
        assert httpx.get(fake.base_url + "/_requests").json()[0]["body"]["seed"] == 7
        httpx.post(fake.base_url + "/_reset")
        assert fake.total_requests == 0 and not fake.requests
        assert next(m.id for m in _client(fake).models.list()) == "fake-gpt"


def test_openai_streamed_with_usage() -> None:
    with running_fake_openai(chunks=6, chunk_delay=0.001) as fake:
        stream = _client(fake).chat.completions.create(
            model="fake-gpt",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "lorem ipsum dolor sit amet consectetur"
        finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
        assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 6
        assert all(c.usage is None for c in chunks[:-1])


def test_openai_raw_sse_framing() -> None:
    with running_fake_openai() as fake:
        r = httpx.post(
            fake.openai_base_url + "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "a b"}], "stream": True},
        )
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e for e in r.text.split("\n\n") if e]
        assert all(e.startswith("data: ") for e in events)
        assert events[-1] == "data: [DONE]"
        assert "usage" not in json.loads(events[0][6:])


def test_openai_tool_calls_non_streamed() -> None:
    with running_fake_openai() as fake:
        resp = _client(fake).chat.completions.create(
            model="fake-gpt",
            messages=[{"role": "user", "content": "What's the weather in Paris?"}],
            tools=[WEATHER_TOOL],
        )
        choice = resp.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls or []
        assert len(calls) == 1 and calls[0].id.startswith("call_")
        fn = calls[0].function  # type: ignore[union-attr]
        assert fn.name == "get_weather"
        assert json.loads(fn.arguments) == {"location": "Paris", "unit": "celsius"}
        assert fake.last_request is not None and fake.last_request.body["tools"][0]["function"]["name"]


def test_openai_tool_calls_streamed() -> None:
    with running_fake_openai(tool_trigger="날씨") as fake:
        stream = _client(fake).chat.completions.create(
            model="fake-gpt",
            messages=[{"role": "user", "content": "서울 날씨 알려줘"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
        name, args, ids, finish = "", "", set(), None
        for c in stream:
            for tc in c.choices[0].delta.tool_calls or []:
                assert tc.index == 0
                if tc.id:
                    ids.add(tc.id)
                if tc.function and tc.function.name:
                    name += tc.function.name
                if tc.function and tc.function.arguments:
                    args += tc.function.arguments
            finish = c.choices[0].finish_reason or finish
        assert name == "get_weather" and len(ids) == 1 and finish == "tool_calls"
        assert json.loads(args)["unit"] == "celsius"


def test_openai_tool_result_turn_answers_text() -> None:
    with running_fake_openai() as fake:
        resp = _client(fake).chat.completions.create(
            model="fake-gpt",
            messages=[
                {"role": "user", "content": "weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            tools=[WEATHER_TOOL],
        )
        assert resp.choices[0].message.content == "tool result: sunny"


def test_openai_429_by_model_name() -> None:
    with running_fake_openai() as fake:
        with pytest.raises(openai.RateLimitError) as info:
            _client(fake).chat.completions.create(
                model="fake-429", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.response.headers["retry-after"] == "1"
        assert info.value.response.headers["retry-after-ms"] == "1000"
        assert info.value.code == "rate_limit_exceeded"
        assert fake.per_outcome["429"] == 1


def test_openai_fail_next_then_succeed_and_control_endpoint() -> None:
    with running_fake_openai() as fake:
        client = _client(fake)
        msgs: list[Any] = [{"role": "user", "content": "x"}]
        httpx.post(fake.base_url + "/_control", json={"fail_next": 2, "fail_status": 503})
        for _ in range(2):
            with pytest.raises(openai.InternalServerError) as info:
                client.chat.completions.create(model="fake-gpt", messages=msgs)
            assert info.value.status_code == 503
        assert client.chat.completions.create(model="fake-gpt", messages=msgs).choices[0].message.content
        fake.configure(mode="500")
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="fake-gpt", messages=msgs)
        assert httpx.post(fake.base_url + "/_control", json={"mode": "bogus"}).status_code == 400


def test_openai_cut_stream_raises() -> None:
    with running_fake_openai(chunks=10, cut_after=3) as fake:
        stream = _client(fake).chat.completions.create(
            model="fake-cut", messages=[{"role": "user", "content": "x"}], stream=True
        )
        seen: list[str] = []
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            for c in stream:
                seen.append(c.choices[0].delta.content or "")
        assert "".join(seen) == "lorem ipsum dolor "
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            _client(fake).chat.completions.create(
                model="fake-cut", messages=[{"role": "user", "content": "x"}]
            )


def test_openai_hang_times_out() -> None:
    with running_fake_openai(hang_seconds=5) as fake:
        client = _client(fake, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="fake-hang", messages=[{"role": "user", "content": "x"}])


async def test_openai_async_in_loop_and_error_rate() -> None:
    async with FakeOpenAIUpstream(error_rate=0.5, seed=1) as fake:
        client = AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
        outcomes = []
        for _ in range(40):
            try:
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
                outcomes.append("ok")
            except openai.InternalServerError:
                outcomes.append("err")
        await client.close()
        assert 5 < outcomes.count("err") < 35
        assert fake.per_outcome["500"] == outcomes.count("err")


def test_ollama_streaming_default_and_non_streamed() -> None:
    with running_fake_ollama() as fake:
        r = httpx.post(
            fake.base_url + "/api/chat",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "hello you"}]},
        )
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert all(not x["done"] for x in lines[:-1]) and lines[-1]["done"] is True
        assert "".join(x["message"]["content"] for x in lines) == "echo: hello you"
        final = lines[-1]
        for key in (
            "total_duration",
            "load_duration",
            "prompt_eval_count",
            "prompt_eval_duration",
            "eval_count",
            "eval_duration",
        ):
            assert isinstance(final[key], int)
        assert final["done_reason"] == "stop" and final["message"] == {"role": "assistant", "content": ""}
        one = httpx.post(
            fake.base_url + "/api/chat",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False},
        ).json()
        assert one["message"]["content"] == "echo: hi" and one["done"] is True
        assert httpx.get(fake.base_url + "/api/version").json()["version"]
        assert httpx.get(fake.base_url + "/api/tags").json()["models"][0]["name"] == "llama3.2:latest"
        assert fake.per_model["llama3.2"] == 2


def test_ollama_with_official_client_and_tools() -> None:
    ollama = pytest.importorskip("ollama")
    with running_fake_ollama() as fake:
        client = ollama.Client(host=fake.base_url)
        _CLIENTS.append(client)
        resp = client.chat(
            model="llama3.2", messages=[{"role": "user", "content": "weather in Rome?"}], tools=[WEATHER_TOOL]
        )
        calls = resp.message.tool_calls
        assert calls and calls[0].function.name == "get_weather"
        assert calls[0].function.arguments == {"location": "Rome", "unit": "celsius"}
        parts = list(
            client.chat(model="llama3.2", messages=[{"role": "user", "content": "a b c"}], stream=True)
        )
        assert "".join(p.message.content or "" for p in parts) == "echo: a b c"
        assert parts[-1].done and parts[-1].eval_count
        assert next(m.model for m in client.list().models) == "llama3.2:latest"


async def test_ollama_faults() -> None:
    async with (
        FakeOllamaUpstream(chunks=8, cut_after=2) as fake,
        httpx.AsyncClient(base_url=fake.base_url, timeout=5) as client,
    ):
        r = await client.post(
            "/api/chat", json={"model": "fake-500", "messages": [{"role": "user", "content": "x"}]}
        )
        assert r.status_code == 500 and "error" in r.json()
        got: list[str] = []
        with pytest.raises(httpx.HTTPError):
            async with client.stream(
                "POST",
                "/api/chat",
                json={"model": "fake-cut", "messages": [{"role": "user", "content": "x"}]},
            ) as s:
                async for line in s.aiter_lines():
                    got.append(line)
        assert len(got) == 2 and not any(json.loads(g)["done"] for g in got)
        fake.configure(hang_seconds=5)
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                "/api/chat",
                json={"model": "fake-hang", "messages": [{"role": "user", "content": "x"}]},
                timeout=0.3,
            )
        assert fake.total_requests == 3
