"""The official ``openai`` SDK and LangChain's ``ChatOpenAI`` against Prism in front of a recording
OpenAI-compatible upstream (issue #20): refusals, logprobs, ``n=2``, streamed tool calls, upstream
errors, ``stop`` limits, the ``client: langchain`` adapter's requests, and unknown ``/v1`` paths."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import OpenAIRefusalError
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from tests.fakes.scripted_upstream import Reply, ScriptedOpenAIUpstream, running_scripted_openai
from tests.support.gateway_proc import GatewayProcess, running_gateway
from tests.support.waiting import wait_until

CONFIG = """
models:
  up:
    provider: openai
    model: upstream-model
    base_url: {base}
    local: false
    tier: cheap
  up-lc:
    provider: openai
    client: langchain
    model: upstream-model
    base_url: {base}
    local: false
    tier: cheap
retry: {{max_attempts: 1, base_delay_s: 0.01, max_delay_s: 0.05, deadline_s: 10}}
cache: {{enabled: true}}
"""

BASE = {
    "id": "chatcmpl-up",
    "created": 1_700_000_000,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_up",
}
LOGPROBS = {
    "content": [
        {
            "token": "Hi",
            "logprob": -0.25,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105]}],
        }
    ],
    "refusal": None,
}
USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 2,
    "total_tokens": 11,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 1,
        "rejected_prediction_tokens": 0,
    },
}


def answer(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "refusal": None, "annotations": [], **m},
            "logprobs": None,
            "finish_reason": "stop",
        }
        for i, m in enumerate(messages)
    ]
    return {
        **BASE,
        "object": "chat.completion",
        "choices": choices,
        "usage": USAGE,
        "service_tier": "default",
        **fields,
    }


def chunk(
    delta: dict[str, Any], *, finish: str | None = None, index: int = 0, **fields: Any
) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish, **fields}
    return {**BASE, "object": "chat.completion.chunk", "service_tier": "default", "choices": [choice]}


@pytest.fixture(scope="module")
def fake() -> Iterator[ScriptedOpenAIUpstream]:
    with running_scripted_openai() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    fake: ScriptedOpenAIUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = CONFIG.format(base=fake.openai_base_url)
    with running_gateway(tmp_path_factory.mktemp("conformance"), config=config) as process:
        yield process


@pytest.fixture
def sdk(gateway: GatewayProcess, fake: ScriptedOpenAIUpstream) -> Iterator[openai.OpenAI]:
    fake.clear()
    with openai.OpenAI(base_url=gateway.openai_base_url, api_key="unused", max_retries=0) as client:
        yield client


def test_sdk_logprobs_fingerprint_tier_and_usage_details(
    sdk: openai.OpenAI, fake: ScriptedOpenAIUpstream
) -> None:
    body = answer({"content": "Hi"})
    body["choices"][0]["logprobs"] = LOGPROBS
    fake.script(Reply(body=body))
    reply = sdk.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=1
    )
    assert reply.choices[0].logprobs is not None
    assert reply.choices[0].logprobs.model_dump() == LOGPROBS
    assert reply.system_fingerprint == "fp_up" and reply.service_tier == "default"
    assert reply.model == "gpt-4o-2024-08-06"
    assert reply.usage is not None and reply.usage.model_dump(exclude_none=True) == USAGE
    assert fake.last_request is not None and fake.last_request.body["top_logprobs"] == 1


def test_sdk_streamed_logprobs_and_model(sdk: openai.OpenAI, fake: ScriptedOpenAIUpstream) -> None:
    fake.script(
        Reply(
            chunks=[
                chunk({"role": "assistant", "content": "", "refusal": None}),
                chunk({"content": "Hi"}, logprobs=LOGPROBS),
                chunk({}, finish="stop"),
            ]
        )
    )
    chunks = list(
        sdk.chat.completions.create(
            model="up", messages=[{"role": "user", "content": "hi"}], logprobs=True, stream=True
        )
    )
    assert [c.choices[0].logprobs.model_dump() for c in chunks if c.choices[0].logprobs] == [LOGPROBS]
    assert {c.model for c in chunks} == {"gpt-4o-2024-08-06"}  # the upstream's, as in JSON answers
    assert {c.system_fingerprint for c in chunks} == {"fp_up"}


class Answer(BaseModel):
    value: int


def test_langchain_structured_output_sees_the_refusal(
    gateway: GatewayProcess, fake: ScriptedOpenAIUpstream
) -> None:
    fake.clear()
    fake.script(Reply(body=answer({"content": None, "refusal": "I can't help with that."})))
    llm = ChatOpenAI(model="up", base_url=gateway.openai_base_url, api_key="unused", max_retries=0)  # type: ignore[arg-type]
    with pytest.raises(OpenAIRefusalError, match="I can't help with that"):
        llm.with_structured_output(Answer, method="json_schema").invoke("answer 42")
    sent = fake.last_request
    assert sent is not None and sent.body["response_format"]["type"] == "json_schema"


def test_sdk_streamed_refusal(sdk: openai.OpenAI, fake: ScriptedOpenAIUpstream) -> None:
    fake.script(
        Reply(
            chunks=[
                chunk({"role": "assistant", "content": None, "refusal": ""}),
                chunk({"refusal": "I can't "}),
                chunk({"refusal": "help."}),
                chunk({}, finish="stop"),
            ]
        )
    )
    stream = sdk.chat.completions.create(model="up", messages=[{"role": "user", "content": "x"}], stream=True)
    assert "".join(c.choices[0].delta.refusal or "" for c in stream) == "I can't help."


def test_sdk_n_2_json_and_stream(sdk: openai.OpenAI, fake: ScriptedOpenAIUpstream) -> None:
    fake.script(Reply(body=answer({"content": "one"}, {"content": "two"})))
    reply = sdk.chat.completions.create(model="up", messages=[{"role": "user", "content": "x"}], n=2)
    assert [c.message.content for c in reply.choices] == ["one", "two"]
    assert fake.last_request is not None and fake.last_request.body["n"] == 2
    fake.script(
        Reply(
            chunks=[
                chunk({"role": "assistant", "content": ""}, index=0),
                chunk({"role": "assistant", "content": ""}, index=1),
                chunk({"content": "on"}, index=0),
                chunk({"content": "tw"}, index=1),
                chunk({"content": "e"}, index=0),
                chunk({}, finish="stop", index=0),
                chunk({"content": "o"}, index=1),
                chunk({}, finish="length", index=1),
            ]
        )
    )
    texts = {0: "", 1: ""}
    finishes = {}
    for part in sdk.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "x"}], n=2, stream=True
    ):
        for choice in part.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: "one", 1: "two"} and finishes == {0: "stop", 1: "length"}


def _tool_stream() -> list[dict[str, Any]]:
    def call(index: int, **fields: Any) -> dict[str, Any]:
        return chunk({"tool_calls": [{"index": index, **fields}]})

    return [
        chunk({"role": "assistant", "content": None}),
        call(0, id="call_a", type="function", function={"name": "weather", "arguments": ""}),
        call(0, function={"arguments": '{"city": '}),
        call(0, function={"arguments": '"Seoul"}'}),
        call(1, id="call_b", type="function", function={"name": "time", "arguments": ""}),
        call(1, function={"arguments": '{"tz": "KST"}'}),
        chunk({}, finish="tool_calls"),
    ]


def test_tools_streamed_in_order_to_the_sdk_and_langchain(
    gateway: GatewayProcess, fake: ScriptedOpenAIUpstream
) -> None:
    fake.clear()
    tools = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
        for name in ("weather", "time")
    ]
    fake.script(Reply(chunks=_tool_stream()))
    with httpx.stream(
        "POST",
        f"{gateway.openai_base_url}/chat/completions",
        json={"model": "up", "messages": [{"role": "user", "content": "x"}], "tools": tools, "stream": True},
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    # one upstream chunk, one client chunk: never re-chunked, never interleaved
    assert len(lines) == len(_tool_stream())
    fake.script(Reply(chunks=_tool_stream()))
    llm = ChatOpenAI(model="up", base_url=gateway.openai_base_url, api_key="unused", max_retries=0)  # type: ignore[arg-type]

    async def collect() -> Any:
        total = None
        async for part in llm.bind_tools(tools).astream("x"):
            total = part if total is None else total + part
        return total

    message = asyncio.run(collect())
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("weather", {"city": "Seoul"}),
        ("time", {"tz": "KST"}),
    ]


@pytest.mark.parametrize(
    ("status", "error", "expected_status"),
    [
        (
            401,
            {
                "message": "Incorrect API key provided: sk-abc***xyz.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            },
            502,
        ),
        (
            404,
            {
                "message": "The model `x` does not exist",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            },
            502,
        ),
        (
            400,
            {
                "message": "Invalid 'tools[0].function.name'",
                "type": "invalid_request_error",
                "param": "tools[0].function.name",
                "code": "invalid_value",
            },
            400,
        ),
        (
            422,
            {
                "message": "Unprocessable",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "bad_shape",
            },
            422,
        ),
    ],
)
def test_upstream_4xx_keeps_code_param_and_message(
    sdk: openai.OpenAI, fake: ScriptedOpenAIUpstream, status: int, error: dict[str, Any], expected_status: int
) -> None:
    fake.script(Reply(status=status, body={"error": error}))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="up", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == expected_status
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == error["code"] and body["param"] == error["param"] and body["type"] == error["type"]
    assert body["message"] == error["message"].replace("sk-abc***xyz", "sk-***")


def test_stop_with_five_items_is_a_clear_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="up", messages=[{"role": "user", "content": "x"}], stop=list("abcde")
        )
    assert caught.value.param == "stop"
    assert "at most 4" in caught.value.message


def test_langchain_client_keeps_developer_max_tokens_and_tool_arguments(
    sdk: openai.OpenAI, fake: ScriptedOpenAIUpstream
) -> None:
    fake.script(Reply(body=answer({"content": "ok"})))
    arguments = '{ "city" : "Seoul" }'  # spacing a re-serialisation would change
    sdk.chat.completions.create(
        model="up-lc",
        max_tokens=33,
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": arguments}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
    )
    sent = fake.last_request
    assert sent is not None
    assert sent.body["messages"][0]["role"] == "developer"
    assert sent.body["max_tokens"] == 33 and "max_completion_tokens" not in sent.body
    assert sent.body["messages"][2]["tool_calls"][0]["function"]["arguments"] == arguments


def test_unknown_v1_paths_and_legacy_completions_name_the_served_endpoints(gateway: GatewayProcess) -> None:
    for path in ("/v1/completions", "/v1/nope"):
        response = httpx.post(f"{gateway.url}{path}", json={"model": "up", "prompt": "x"})
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "unknown_url"
        assert error["message"].startswith(f"Invalid URL (POST {path})")
        assert "POST /v1/chat/completions" in error["message"] and "GET /v1/models" in error["message"]
    completions = httpx.post(f"{gateway.url}/v1/completions", json={}).json()["error"]["message"]
    assert "legacy text completions" in completions


def test_langchain_messages_unchanged_by_the_default_client(
    gateway: GatewayProcess, fake: ScriptedOpenAIUpstream
) -> None:
    """LangChain as the *client*: what it sends reaches the upstream as it sent it."""
    fake.clear()
    fake.script(Reply(body=answer({"content": "ok"})))
    llm = ChatOpenAI(
        model="up", base_url=gateway.openai_base_url, api_key="unused", max_retries=0, temperature=0.2
    )  # type: ignore[arg-type]
    llm.invoke(
        [
            SystemMessage("sys"),
            HumanMessage("q"),
            AIMessage("", tool_calls=[{"id": "c1", "name": "weather", "args": {"city": "Seoul"}}]),
            ToolMessage("sunny", tool_call_id="c1"),
        ]
    )
    sent = fake.last_request
    assert sent is not None and [m["role"] for m in sent.body["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
    ]
    assert sent.body["temperature"] == 0.2 and sent.body["model"] == "upstream-model"


def test_cache_only_for_explicitly_deterministic_requests_and_hits_name_the_model(
    gateway: GatewayProcess, sdk: openai.OpenAI, fake: ScriptedOpenAIUpstream
) -> None:
    """No ``temperature``: not cached (OpenAI's default is 1). ``temperature: 0``: the second call is a
    hit, accounted to the configured model and its provider, not the upstream's response ``model``."""
    marker = uuid.uuid4().hex
    fake.script(*(Reply(body=answer({"content": "fresh"})) for _ in range(3)))
    messages = [{"role": "user", "content": f"cache {marker}"}]
    for _ in range(2):
        raw = sdk.chat.completions.with_raw_response.create(model="up", messages=messages)  # type: ignore[arg-type]
        assert raw.headers["x-prism-cache"] == "bypass"
    hit = None
    for _ in range(2):
        hit = sdk.chat.completions.with_raw_response.create(model="up", messages=messages, temperature=0)  # type: ignore[arg-type]
    assert hit is not None and hit.headers["x-prism-cache"] == "hit" and hit.headers["x-prism-model"] == "up"
    assert len(fake.requests) == 3
    request_id = hit.headers["x-request-id"]

    def access_lines() -> list[dict[str, Any]]:  # the access log is written after the answer
        lines = [
            orjson.loads(line)
            for line in gateway.log().splitlines()
            if request_id in line and line.startswith("{")
        ]
        return [line for line in lines if "cache_hit" in line]

    wait_until(lambda: bool(access_lines()), "the cache hit's access log line")
    access = access_lines()
    assert access[-1]["cache_hit"] is True
    assert (access[-1]["provider"], access[-1]["model_served"]) == ("openai", "up")
    tokens = [
        (sample.labels["model"], sample.labels["provider"])
        for family in text_string_to_metric_families(httpx.get(f"{gateway.url}/metrics").text)
        for sample in family.samples
        if sample.name == "prism_tokens_total"
    ]
    assert ("up", "openai") in tokens and not any(model == "other" for model, _ in tokens)
