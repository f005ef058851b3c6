"""The ``openai-agents`` package's default model (the Responses API) pointed at a real uvicorn Prism
in front of the fake OpenAI upstream playing a tool-calling model: an Agent with a function tool
runs to its final answer, plain and streamed, and each model call is one usage record.

Tracing is switched off (the SDK would otherwise export spans to OpenAI's servers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import openai
import pytest
from agents import (
    Agent,
    ModelSettings,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from sqlalchemy import select

from gateway.db.engine import create_engine
from gateway.db.models import UsageLog
from tests.fakes import FakeUpstream, running_fake_openai
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.db_fixtures import db_test_settings
from tests.support.gateway_proc import GatewayProcess, start_gateway

pytestmark = pytest.mark.integration

T = TypeVar("T")

CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    CALLS.append(city)
    return f"sunny in {city}"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with running_fake_openai() as server:
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, pg_url: str, fake: FakeUpstream) -> Iterator[GatewayProcess]:
    config = f"""
models:
  agent-model:
    provider: openai
    base_url: {fake.openai_base_url}
    api_key_env: FAKE_KEY
    local: true
"""
    process = start_gateway(
        tmp_path_factory.mktemp("agents"),
        config=config,
        env={"FAKE_KEY": "sk-fake", "GATEWAY_DATABASE_URL": pg_url, "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05"},
    )
    yield process
    process.stop()


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    set_tracing_disabled(True)
    set_default_openai_api("responses")
    CALLS.clear()
    return Agent(
        name="forecaster",
        instructions="Use the tool to answer questions about the weather.",
        model="agent-model",
        tools=[get_weather],
        model_settings=ModelSettings(temperature=0.2),
    )


async def _with_prism(gw: GatewayProcess, run: Callable[[], Awaitable[T]]) -> T:
    """Run with the SDK's default client pointed at Prism (made and closed on this event loop)."""
    client = openai.AsyncOpenAI(base_url=gw.openai_base_url, api_key="sk-unused", max_retries=0)
    set_default_openai_client(client, use_for_tracing=False)
    try:
        return await run()
    finally:
        await client.close()


async def _usage(url: str, since: int) -> list[UsageLog]:
    engine = create_engine(db_test_settings(url))
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(UsageLog).order_by(UsageLog.created_at))).all()
        return list(rows)[since:]  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def _count(url: str) -> int:
    return len(await _usage(url, 0))


def test_agent_runs_a_function_tool_to_its_answer(
    agent: Agent, fake: FakeUpstream, gw: GatewayProcess, pg_url: str
) -> None:
    before = asyncio.run(_count(pg_url))
    result = asyncio.run(_with_prism(gw, lambda: Runner.run(agent, "What is the weather in Seoul?")))
    assert CALLS == ["Seoul"]
    assert result.final_output == "tool result: sunny in Seoul"
    bodies = [r.body for r in fake.requests_to("/v1/chat/completions")][-2:]
    assert bodies[0]["messages"][0] == {
        "role": "system",
        "content": "Use the tool to answer questions about the weather.",
    }
    assert bodies[0]["tools"][0]["function"]["name"] == "get_weather"
    assert bodies[0]["temperature"] == 0.2
    assert [m["role"] for m in bodies[1]["messages"]] == ["system", "user", "assistant", "tool"]

    async def two_new_rows() -> list[UsageLog]:
        for _ in range(200):
            rows = await _usage(pg_url, before)
            if len(rows) >= 2:
                return rows
            await asyncio.sleep(0.05)
        return await _usage(pg_url, before)

    rows = asyncio.run(two_new_rows())
    assert [(row.status, row.model_served, row.streamed) for row in rows] == [
        ("ok", "agent-model", False)
    ] * 2


def test_agent_streamed_run(agent: Agent, gw: GatewayProcess) -> None:
    async def run() -> tuple[object, list[str]]:
        streamed = Runner.run_streamed(agent, "Tell me the weather in Busan")
        kinds = [event.type async for event in streamed.stream_events()]
        return streamed.final_output, kinds

    final, kinds = asyncio.run(_with_prism(gw, run))
    assert CALLS == ["Busan"]
    assert final == "tool result: sunny in Busan"
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds


def test_agent_chains_turns_with_previous_response_id(
    agent: Agent, fake: FakeUpstream, gw: GatewayProcess
) -> None:
    """``auto_previous_response_id``: the second model call sends only the tool's output and the first
    response's id; Prism replays the stored turn (the assistant's tool call) to the chat model."""
    result = asyncio.run(
        _with_prism(
            gw, lambda: Runner.run(agent, "What is the weather in Daegu?", auto_previous_response_id=True)
        )
    )
    assert CALLS == ["Daegu"] and result.final_output == "tool result: sunny in Daegu"
    second = fake.requests_to("/v1/chat/completions")[-1].body
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assert second["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"
    follow_up = asyncio.run(
        _with_prism(
            gw,
            lambda: Runner.run(agent, "Thanks!", previous_response_id=result.last_response_id),
        )
    )
    assert follow_up.final_output == "echo: Thanks!"
    third = fake.requests_to("/v1/chat/completions")[-1].body
    assert [m["role"] for m in third["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
