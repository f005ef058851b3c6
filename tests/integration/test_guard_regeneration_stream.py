"""Regeneration of a streamed answer the output guard blocks before its first token (issue #22, item 6).

The real gateway in front of a fake OpenAI upstream speaking real SSE over HTTP; the clients are the
official ``openai`` and ``anthropic`` SDKs, streaming. The fake's first answer names a code name
(an output deny pattern that blocks); asked again with Prism's corrective note it answers cleanly.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.fakes.openai_upstream import (
    FakeOpenAIUpstream,
    ReplyPlan,
    count_tokens,
    message_text,
    run_in_thread,
    split_tokens,
)
from tests.support.gateway_proc import GatewayProcess, running_gateway

pytestmark = pytest.mark.integration

KEY_ENV = "PRISM_TEST_REGEN_UPSTREAM_KEY"
CLEAN = "I cannot share internal code names, but I can describe the project in general terms."
PREAMBLE = " ".join(f"Step {n} of the plan is routine and documented in the handbook." for n in range(6))

CONFIG = """
models:
  guarded:
    provider: openai
    model: gpt-4o-mini
    base_url: {base}
    api_key_env: {key_env}
    local: false
retry: {{max_attempts: 1, base_delay_s: 0.01, max_delay_s: 0.05, deadline_s: 20}}
cache: {{enabled: false}}
tools:
  enabled: [calculator]
  regenerate: {{enabled: true}}
guardrails:
  external:
    output:
      deny_patterns: [{{name: codename, pattern: "PROJECT-ORCA", action: block}}]
"""


class CodeNameModel(FakeOpenAIUpstream):
    """``leak``: the code name at once, clean once corrected; ``stubborn``: the code name every time;
    ``late``: a long clean preamble, then the code name (past the held window)."""

    def plan(self, body: dict[str, Any]) -> ReplyPlan:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        first = message_text(next((m for m in messages if m.get("role") == "user"), {}).get("content"))
        scenario = first.split()[0].lower() if first.split() else ""
        corrected = any(m.get("role") == "system" for m in messages)
        if scenario == "leak":
            text = CLEAN if corrected else "The code name is PROJECT-ORCA, launching in May."
        elif scenario == "stubborn":
            text = "Fine: the code name is PROJECT-ORCA."
        elif scenario == "late":
            text = PREAMBLE + " The code name is PROJECT-ORCA."
        else:
            text = "echo: " + first
        pieces = split_tokens(text)
        prompt = max(sum(count_tokens(message_text(m.get("content"))) + 3 for m in messages), 1)
        return ReplyPlan(pieces, [], "stop", prompt, len(pieces))


@pytest.fixture(scope="module")
def fake() -> Iterator[CodeNameModel]:
    with run_in_thread(CodeNameModel(api_key="sk-regen")) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def gateway(fake: CodeNameModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp: Path = tmp_path_factory.mktemp("regen")
    config = CONFIG.format(base=fake.openai_base_url, key_env=KEY_ENV)
    env = {KEY_ENV: "sk-regen", "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05"}
    with running_gateway(tmp, config=config, env=env, ready_timeout=120.0) as process:
        process.db_path = tmp / f"prism-{process.port}.db"  # type: ignore[attr-defined]
        yield process


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.openai_base_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def _upstream_calls(fake: CodeNameModel, marker: str) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests_to("/v1/chat/completions") if marker in str(r.body)]


def _regenerations(gateway: GatewayProcess, mode: str, outcome: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    total = 0.0
    for labels, value in re.findall(r"prism_guard_regenerations_total\{([^}]*)\} ([0-9.e+]+)", text):
        if f'mode="{mode}"' in labels and f'outcome="{outcome}"' in labels:
            total += float(value)
    return total


def _usage_row(gateway: GatewayProcess, request_id: str) -> tuple[int, int, str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with sqlite3.connect(gateway.db_path) as db:  # type: ignore[attr-defined]
            row = db.execute(
                "SELECT prompt_tokens, completion_tokens, status FROM usage_logs WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        if row is not None:
            return int(row[0]), int(row[1]), str(row[2])
        time.sleep(0.05)
    raise AssertionError(f"no usage record for {request_id}")


def test_a_stream_blocked_before_its_first_token_is_regenerated(
    client: openai.OpenAI, fake: CodeNameModel, gateway: GatewayProcess
) -> None:
    before = _regenerations(gateway, "stream", "passed")
    with client.chat.completions.with_streaming_response.create(
        model="guarded",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "leak m1 what is the project called?"}],
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == CLEAN  # the client saw the second answer only, streamed
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    calls = _upstream_calls(fake, "leak m1")
    assert len(calls) == 2 and calls[1]["stream"] and calls[1]["messages"][-1]["role"] == "system"
    assert _regenerations(gateway, "stream", "passed") == before + 1
    _prompt, completion, status = _usage_row(gateway, request_id)
    assert status == "ok"
    usage = chunks[-1].usage
    assert usage is not None and completion > usage.completion_tokens  # both attempts are booked


def test_a_second_block_is_the_400_a_whole_answer_gets(
    client: openai.OpenAI, fake: CodeNameModel, gateway: GatewayProcess
) -> None:
    before = _regenerations(gateway, "stream", "blocked")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="guarded", stream=True, messages=[{"role": "user", "content": "stubborn m2"}]
        )
    assert caught.value.code == "output_denied_pattern"
    assert "output=block" in caught.value.response.headers["x-prism-guard"]
    assert len(_upstream_calls(fake, "stubborn m2")) == 2  # bounded: one regeneration
    assert _regenerations(gateway, "stream", "blocked") == before + 1


def test_a_block_after_the_first_token_ends_the_stream_as_before(
    client: openai.OpenAI, fake: CodeNameModel, gateway: GatewayProcess
) -> None:
    before = _regenerations(gateway, "stream", "too_late")
    received: list[str] = []
    stream = client.chat.completions.create(
        model="guarded", stream=True, messages=[{"role": "user", "content": "late m3"}]
    )
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    text = "".join(received)
    assert text.startswith("Step 0 of the plan") and "PROJECT-ORCA" not in text
    assert len(_upstream_calls(fake, "late m3")) == 1  # the client had tokens: no regeneration
    assert _regenerations(gateway, "stream", "too_late") == before + 1


def test_the_anthropic_messages_stream_gets_the_regenerated_answer(
    gateway: GatewayProcess, fake: CodeNameModel
) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    with (
        sdk,
        sdk.messages.stream(
            model="guarded",
            max_tokens=200,
            messages=[{"role": "user", "content": "leak m4 what is the project called?"}],
        ) as stream,
    ):
        events = [event.type for event in stream]
        message = stream.get_final_message()
    assert "".join(b.text for b in message.content if b.type == "text") == CLEAN
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert message.stop_reason == "end_turn"
    assert len(_upstream_calls(fake, "leak m4")) == 2


def test_a_clean_stream_is_relayed_once_and_whole(client: openai.OpenAI, fake: CodeNameModel) -> None:
    chunks = list(
        client.chat.completions.create(
            model="guarded", stream=True, messages=[{"role": "user", "content": "hello m5 there"}]
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello m5 there"
    assert len(_upstream_calls(fake, "hello m5")) == 1


def test_a_second_block_on_the_anthropic_stream_is_its_400(gateway: GatewayProcess) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    with (
        sdk,
        pytest.raises(anthropic.BadRequestError) as caught,
        sdk.messages.stream(
            model="guarded", max_tokens=200, messages=[{"role": "user", "content": "stubborn m6"}]
        ) as stream,
    ):
        list(stream)
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
