"""The server-side tool loop over real HTTP (issue #22, items 1 and 6): the official ``openai`` SDK
against a real uvicorn Prism on Postgres, and a fake upstream that plays a model deciding to call
tools (``tests/fakes/tool_model.py``): several rounds, parallel calls, a tool error, a runaway
loop, mixed server and client calls, streaming, allow-lists, an indirect prompt injection in a
tool result — with the usage rows and the audit rows checked in the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from gateway.db.engine import create_engine
from gateway.db.models import ToolCallAudit, UsageLog
from tests.fakes.openai_upstream import run_in_thread
from tests.fakes.tool_model import NEW_EMAIL, ToolModelUpstream
from tests.integration.db_fixtures import db_test_settings
from tests.support.gateway_proc import GatewayProcess, start_gateway

pytestmark = pytest.mark.integration

ADMIN = ("tools-admin@example.com", "Tools-admin-passphrase-7")
CALC = {"type": "function", "function": {"name": "prism.calculator"}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _config(base_url: str) -> str:
    model = f"provider: openai, base_url: {base_url}, api_key_env: FAKE_KEY, local: true"
    return f"""
models:
  plain: {{{model}, model: fake-gpt, price_input_per_mtok: 1000, price_output_per_mtok: 2000}}
  toolgpt: {{{model}, model: fake-gpt, tools: [calculator]}}
  slowgpt: {{{model}, model: fake-slow}}
  guarded: {{{model}, model: fake-gpt}}
  external: {{provider: openai, base_url: {base_url}, api_key_env: FAKE_KEY, local: false, model: fake-gpt}}
  aanotools: {{{model}, model: fake-gpt, supports_tools: false}}
aliases:
  tooly: {{target: plain, tools: [calculator, datetime]}}
  auto: {{smart: true, tools: [calculator, datetime]}}
retry: {{max_attempts: 1, deadline_s: 30}}
cache: {{enabled: false}}
tools:
  loop: {{max_rounds: 4, store_payloads: true, keepalive_s: 0.2}}
  regenerate: {{enabled: true}}
guardrails:
  models:
    guarded: {{output: {{deny_patterns: [{{name: codename, pattern: "PROJECT-ORCA"}}]}}}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[ToolModelUpstream]:
    with run_in_thread(ToolModelUpstream(slow_latency=0.5)) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, pg_database: str, fake: ToolModelUpstream
) -> Iterator[GatewayProcess]:
    tmp: Path = tmp_path_factory.mktemp("toolloop")
    process = start_gateway(
        tmp,
        config=_config(fake.openai_base_url),
        ready_timeout=120.0,  # the shared 2-core machine runs other suites too
        env={
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_DATABASE_URL": pg_database,
            "GATEWAY_ADMIN_EMAIL": ADMIN[0],
            "GATEWAY_ADMIN_PASSWORD": ADMIN[1],
            "GATEWAY_API_KEY_CACHE_TTL_S": "0",
            "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05",
            "FAKE_KEY": "sk-fake",
        },
    )
    yield process
    process.stop()


def _key(gw: GatewayProcess, **policy: object) -> str:
    token = httpx.post(gw.url + "/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}).json()
    r = httpx.post(
        gw.url + "/api/keys",
        json={"name": f"tools-{uuid.uuid4().hex[:6]}", **policy},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.openai_base_url, api_key=_key(gw), max_retries=0, timeout=30) as sdk:
        yield sdk


def _ask(client: openai.OpenAI, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        messages=[{"role": "user", "content": text}], **{"model": "plain", **kwargs}
    )


async def _rows(url: str, request_id: str, *, audits: int) -> tuple[UsageLog, list[ToolCallAudit]]:
    engine = create_engine(db_test_settings(url))
    try:
        for _ in range(200):  # written off the request path: wait for the flush, bounded
            async with engine.connect() as conn:
                usage = (
                    await conn.execute(select(UsageLog).where(UsageLog.request_id == request_id))
                ).first()
                calls = (
                    await conn.execute(
                        select(ToolCallAudit)
                        .where(ToolCallAudit.request_id == request_id)
                        .order_by(ToolCallAudit.id)
                    )
                ).all()
            if usage is not None and len(calls) >= audits:
                return usage, list(calls)  # type: ignore[arg-type]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no usage row / {audits} audit rows for {request_id}")
    finally:
        await engine.dispose()


def _upstream_bodies(fake: ToolModelUpstream, marker: str) -> list[dict[str, Any]]:
    return [
        b
        for b in fake.bodies
        if isinstance(b, dict) and marker in str((b.get("messages") or [{}])[0].get("content"))
    ]


async def test_one_round_runs_the_tool_and_books_every_model_call(
    client: openai.OpenAI, fake: ToolModelUpstream, pg_database: str
) -> None:
    marker = uuid.uuid4().hex[:8]
    raw = _ask(client, f"calc please {marker}", tools=[CALC])
    answer = raw.parse()
    assert answer.choices[0].finish_reason == "stop"
    assert '"result":"42"' in (answer.choices[0].message.content or "").replace(" ", "")
    assert answer.model_extra["prism_tool_loop"] == {"rounds": 1, "tool_calls": 1, "stopped": None}
    assert raw.headers["x-prism-tool-rounds"] == "1"
    bodies = _upstream_bodies(fake, marker)
    assert len(bodies) == 2
    sent = [t["function"]["name"] for t in bodies[0]["tools"]]
    assert sent == ["calculator"]  # the reference became the full spec
    assert bodies[0]["tools"][0]["function"]["parameters"]["properties"]["expression"]
    assert [m["role"] for m in bodies[1]["messages"]] == ["user", "assistant", "tool"]
    usage, audit = await _rows(pg_database, raw.headers["x-request-id"], audits=1)
    assert (usage.tool_rounds, usage.tool_calls) == (1, 1)
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )  # the answer's usage is the loop's: every model call summed
    first_prompt = sum(len(m["content"].split()) + 3 for m in bodies[0]["messages"])
    assert usage.prompt_tokens > first_prompt  # both model calls summed
    assert usage.cost_usd == pytest.approx(
        (usage.prompt_tokens * 1000 + usage.completion_tokens * 2000) / 1e6
    )
    row = audit[0]
    assert (row.tool, row.status, row.guard) == ("calculator", "ok", "allow")
    assert row.argument_bytes == len('{"expression":"6*7"}') and row.result_bytes > 0
    assert row.arguments == '{"expression":"6*7"}' and row.result is not None  # store_payloads: true


async def test_parallel_calls_in_one_answer_via_an_mcp_entry(client: openai.OpenAI, pg_database: str) -> None:
    entry = {"type": "mcp", "server_label": "prism", "allowed_tools": ["calculator", "datetime"]}
    raw = _ask(client, "parallel now", tools=[entry])
    content = raw.parse().choices[0].message.content or ""
    assert "1024" in content and '"operation":"now"' in content
    _, audit = await _rows(pg_database, raw.headers["x-request-id"], audits=2)
    assert sorted(r.tool for r in audit) == ["calculator", "datetime"]


def test_several_rounds(client: openai.OpenAI) -> None:
    answer = _ask(client, "multi step", tools=[CALC]).parse()
    assert (answer.choices[0].message.content or "").startswith("answer after 3 rounds")
    assert answer.model_extra["prism_tool_loop"]["rounds"] == 3


async def test_a_tool_error_goes_back_to_the_model(client: openai.OpenAI, pg_database: str) -> None:
    raw = _ask(client, "error case", tools=[CALC])
    assert "execution_error" in (raw.parse().choices[0].message.content or "")
    _, audit = await _rows(pg_database, raw.headers["x-request-id"], audits=1)
    assert audit[0].status == "execution_error"


async def test_a_runaway_loop_stops_at_max_rounds(client: openai.OpenAI, pg_database: str) -> None:
    raw = _ask(client, "runaway loop", tools=[CALC])
    answer = raw.parse()
    assert answer.choices[0].finish_reason == "length"
    assert answer.model_extra["prism_tool_loop"] == {"rounds": 4, "tool_calls": 4, "stopped": "max_rounds"}
    assert raw.headers["x-prism-tool-loop"] == "stopped=max_rounds"
    usage, _ = await _rows(pg_database, raw.headers["x-request-id"], audits=4)
    assert (usage.tool_rounds, usage.status) == (4, "ok")
    assert usage.prompt_tokens > 0 and usage.completion_tokens >= 50  # five model calls of 10 tokens


def test_mixed_answer_runs_server_calls_and_returns_client_calls(
    client: openai.OpenAI, fake: ToolModelUpstream
) -> None:
    marker = uuid.uuid4().hex[:8]
    answer = _ask(client, f"mixed {marker}", tools=[WEATHER, CALC]).parse()
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls or []] == ["get_weather"]
    bodies = _upstream_bodies(fake, marker)
    assert len(bodies) == 2
    assistant = bodies[1]["messages"][1]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["calculator"]  # client call deferred
    assert bodies[1]["messages"][2]["role"] == "tool"
    assert bodies[0]["tools"][0] == WEATHER  # the client's own tool, exactly as sent


def test_streamed_loop_keeps_the_stream_alive_then_streams_the_answer(gw: GatewayProcess) -> None:
    key = _key(gw)
    body = {
        "model": "slowgpt",
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [CALC],
        "messages": [{"role": "user", "content": "calc slowly"}],
    }
    with httpx.stream(
        "POST",
        gw.openai_base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert any(line.startswith(": prism tool round") for line in lines)
    assert lines[-1] == "data: [DONE]"
    with openai.OpenAI(base_url=gw.openai_base_url, api_key=key, max_retries=0) as sdk:
        stream = sdk.chat.completions.create(
            model="slowgpt",
            stream=True,
            tools=[CALC],
            messages=[{"role": "user", "content": "calc streamed"}],
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert '"result":"42"' in text.replace(" ", "")


def test_route_offers_tools_without_the_client_naming_them(client: openai.OpenAI) -> None:
    answer = _ask(client, "calc by route", model="toolgpt").parse()
    assert answer.model_extra["prism_tool_loop"]["rounds"] == 1
    assert "42" in (answer.choices[0].message.content or "")


def test_requests_without_server_tools_take_the_plain_path(client: openai.OpenAI) -> None:
    raw = _ask(client, "calc but no tools")
    assert "prism_tool_loop" not in (raw.parse().model_extra or {})
    assert "x-prism-tool-rounds" not in raw.headers
    client_only = _ask(client, "what is the weather", tools=[WEATHER]).parse()
    assert "prism_tool_loop" not in (client_only.model_extra or {})


def test_allow_lists_of_keys(gw: GatewayProcess) -> None:
    key = _key(gw, allowed_tools=["datetime"])
    with openai.OpenAI(base_url=gw.openai_base_url, api_key=key, max_retries=0) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            _ask(sdk, "calc denied", tools=[CALC])
        assert caught.value.code == "tool_not_allowed"
        with pytest.raises(openai.BadRequestError) as unknown:
            _ask(sdk, "calc unknown", tools=[{"type": "function", "function": {"name": "prism.nope"}}])
        assert unknown.value.code == "unknown_tool"
        # the alias offers calculator and datetime: this key gets datetime only (quietly), so the
        # model's call of the calculator is not a server call: no round runs
        answer = _ask(sdk, "calc via alias", model="tooly").parse()
        assert answer.model_extra["prism_tool_loop"]["rounds"] == 0


async def test_an_indirect_injection_in_a_tool_result_never_reaches_the_model(
    client: openai.OpenAI, fake: ToolModelUpstream, pg_database: str
) -> None:
    marker = uuid.uuid4().hex[:8]
    try:
        raw = _ask(
            client, f"inject {marker}", tools=[{"type": "function", "function": {"name": "prism.python"}}]
        )
    except openai.BadRequestError as exc:
        pytest.skip(f"the sandboxed python tool is not available here: {exc}")
    content = raw.parse().choices[0].message.content or ""
    assert "withheld" in content and "developer mode" not in content
    second = _upstream_bodies(fake, marker)[1]
    results = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert len(results) == 1 and "developer mode" not in results[0]
    _, audit = await _rows(pg_database, raw.headers["x-request-id"], audits=1)
    assert (audit[0].tool, audit[0].status, audit[0].guard) == ("python", "ok", "injection")


async def test_an_output_guard_block_is_regenerated_once(
    client: openai.OpenAI, fake: ToolModelUpstream, pg_database: str
) -> None:
    marker = uuid.uuid4().hex[:8]
    raw = _ask(client, f"leak {marker}", model="guarded")
    assert raw.parse().choices[0].message.content == "I cannot share internal code names."
    bodies = _upstream_bodies(fake, marker)
    assert len(bodies) == 2 and bodies[1]["messages"][-1]["role"] == "system"  # the corrective note
    usage, _ = await _rows(pg_database, raw.headers["x-request-id"], audits=0)
    assert usage.completion_tokens >= 14  # the blocked answer's tokens are booked too
    chunks = client.chat.completions.create(  # a stream blocked before its first token, too
        model="guarded", stream=True, messages=[{"role": "user", "content": "leak streamed"}]
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "I cannot share internal code names."


async def test_a_tool_acts_on_the_users_values_and_its_result_is_masked_for_the_model(
    client: openai.OpenAI, fake: ToolModelUpstream, pg_database: str
) -> None:
    marker = uuid.uuid4().hex[:8]
    email = f"kim.{marker}@example.com"
    raw = _ask(
        client,
        f"pii mail {email} please",
        model="external",
        tools=[{"type": "function", "function": {"name": "prism.python"}}],
    )
    answer = raw.parse().choices[0].message.content
    assert email in answer and NEW_EMAIL in answer  # the answer restores both (output policy: flag)
    bodies = _upstream_bodies(fake, "pii mail")
    sent = [b for b in bodies if "<EMAIL_1>" in str(b["messages"][0]["content"])]
    assert len(sent) == 2 and email not in str(sent)  # the model never sees the user's value
    tool_message = sent[1]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert "to=<EMAIL_1>" in tool_message["content"] and "cc=<EMAIL_2>" in tool_message["content"]
    assert NEW_EMAIL not in tool_message["content"]  # the result is masked for the destination
    _usage, audit = await _rows(pg_database, raw.headers["x-request-id"], audits=1)
    assert audit[0].guard == "mask" and "<EMAIL_1>" in str(audit[0].arguments)  # the model's arguments
    assert f"to={email}" in str(audit[0].result)  # the built-in tool ran on the user's value


def test_the_request_deadline_bounds_the_whole_loop(gw: GatewayProcess) -> None:
    sdk = openai.OpenAI(base_url=gw.openai_base_url, api_key=_key(gw), max_retries=0)
    with sdk, pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(
            model="slowgpt",  # 0.5 s per model call, a runaway loop, 1.2 s for everything
            tools=[CALC],
            messages=[{"role": "user", "content": "runaway slowly"}],
            extra_headers={"X-Prism-Timeout": "1.2"},
        )
    assert caught.value.status_code == 504 and caught.value.code == "deadline_exceeded"


def test_auto_picks_a_tool_capable_model_and_the_needed_tools(
    gw: GatewayProcess, client: openai.OpenAI, fake: ToolModelUpstream
) -> None:
    def explain(text: str) -> str:
        r = httpx.post(
            gw.openai_base_url + "/route/explain",
            json={"model": "auto", "messages": [{"role": "user", "content": text}]},
            headers={"Authorization": f"Bearer {client.api_key}"},
        )
        assert r.status_code == 200, r.text
        return str(r.json()["model"])

    assert explain("Write a haiku about autumn leaves") == "aanotools"  # cheapest: first by name
    assert explain("What is 1234 * 5678?") != "aanotools"  # needs a tool: a tool-capable model
    for text, offered in (
        ("What is 1234 * 5678? M1", ["calculator"]),
        ("What time is it now in Seoul? M2", ["datetime"]),
    ):
        _ask(client, text, model="auto")
        body = _upstream_bodies(fake, text)[-1]
        assert [t["function"]["name"] for t in body["tools"]] == offered
    _ask(client, "Write a haiku about tools M3", model="auto")
    assert "tools" not in _upstream_bodies(fake, "M3")[-1]  # nothing needed: nothing offered


def test_user_and_key_tool_policy_set_by_the_admin(gw: GatewayProcess) -> None:
    email, password = f"tools-{uuid.uuid4().hex[:8]}@example.com", "Amber-lantern-river-42"
    assert (
        httpx.post(gw.url + "/auth/register", json={"email": email, "password": password}).status_code == 202
    )
    token = httpx.post(gw.url + "/auth/login", json={"email": email, "password": password}).json()[
        "access_token"
    ]
    mine = {"Authorization": f"Bearer {token}"}
    user_id = httpx.get(gw.url + "/users/me", headers=mine).json()["id"]
    created = httpx.post(gw.url + "/api/keys", json={"name": "k"}, headers=mine).json()
    admin_token = httpx.post(gw.url + "/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}).json()
    admin = {"Authorization": f"Bearer {admin_token['access_token']}"}
    put = httpx.put(
        gw.url + f"/admin/tool-policy/user:{user_id}", json={"allowed_tools": ["datetime"]}, headers=admin
    )
    assert put.status_code == 200 and put.json()["allowed_tools"] == ["datetime"]
    assert (
        httpx.put(
            gw.url + f"/admin/tool-policy/user:{user_id}", json={"allowed_tools": []}, headers=mine
        ).status_code
        == 403
    )
    with openai.OpenAI(base_url=gw.openai_base_url, api_key=created["key"], max_retries=0) as sdk:
        with pytest.raises(openai.PermissionDeniedError):
            _ask(sdk, "calc denied by user policy", tools=[CALC])
        httpx.put(
            gw.url + f"/admin/tool-policy/key:{created['id']}",
            json={"allowed_tools": ["calculator"]},
            headers=admin,
        )
        with pytest.raises(openai.PermissionDeniedError):  # the key allows it, its user does not: both apply
            _ask(sdk, "calc denied by user policy again", tools=[CALC])
        httpx.put(gw.url + f"/admin/tool-policy/user:{user_id}", json={"allowed_tools": []}, headers=admin)
        answer = _ask(sdk, "calc allowed now", tools=[CALC]).parse()
        assert answer.model_extra["prism_tool_loop"]["rounds"] == 1
    got = httpx.get(gw.url + f"/admin/tool-policy/key:{created['id']}", headers=admin).json()
    assert got == {"scope": f"key:{created['id']}", "allowed_tools": ["calculator"]}
