"""The pipeline's guard adapter (gateway/agent/guard.py): stream filter and whole-answer checks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.agent.guard import GuardService
from gateway.agent.state import RequestTrace
from gateway.config.guardrails import GuardrailsConfig
from gateway.errors import ContentBlocked
from gateway.guardrails import Guardrails
from gateway.providers.base import Choice, Completion, Delta, Usage
from gateway.routing.router import RouteDecision

CONFIG = GuardrailsConfig.model_validate(
    {
        "external": {
            "output": {"deny_patterns": [{"name": "internal_host", "pattern": r"\w+\.corp\.internal"}]}
        }
    }
)
GUARDRAILS = Guardrails(CONFIG)
POLICY = GUARDRAILS.policy_for(model="ext", is_local=False)
SERVICE = GuardService()
EMAIL = "bob@example.com"


def _trace() -> RequestTrace:
    return RequestTrace(request_id="r1", started_at=0.0, deadline=0.0)


def _masked(text: str) -> tuple[str, Any]:
    guarded = SERVICE.check_input(
        GUARDRAILS, [{"role": "user", "content": text}], policy=POLICY, trace=_trace(), model="ext"
    )
    return guarded.messages[0]["content"], guarded.masks


async def _deltas(items: list[Delta]) -> AsyncIterator[Delta]:
    for item in items:
        yield item


async def _run(items: list[Delta], masks: Any, trace: RequestTrace) -> list[Delta]:
    apply = SERVICE.stream_filter(GUARDRAILS, policy=POLICY, masks=masks, trace=trace, model="ext")
    return [delta async for delta in apply(_deltas(items))]


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 3, 7])
async def test_stream_unmasks_content_per_choice_and_tool_arguments(size: int) -> None:
    masked, masks = _masked(f"write to {EMAIL}")
    assert EMAIL not in masked and "<EMAIL_1>" in masked
    arguments = json.dumps({"to": "<EMAIL_1>", "note": "hi"})
    items = [Delta(content=piece, index=0) for piece in _split("sending to <EMAIL_1> now", size)]
    items += [Delta(content=piece, index=1) for piece in _split("or <EMAIL_1>?", size)]
    items.append(
        Delta(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "send", "arguments": ""}}], index=0)
    )
    items += [
        Delta(tool_calls=[{"index": 0, "function": {"arguments": piece}}], index=0)
        for piece in _split(arguments, size)
    ]
    items += [Delta(finish_reason="stop", index=1), Delta(finish_reason="tool_calls", index=0)]
    items.append(Delta(usage=Usage(prompt_tokens=3, completion_tokens=5)))
    trace = _trace()
    out = await _run(items, masks, trace)
    text = {i: "".join(d.content or "" for d in out if d.index == i) for i in (0, 1)}
    assert text == {0: f"sending to {EMAIL} now", 1: f"or {EMAIL}?"}
    args = "".join(
        (call.get("function") or {}).get("arguments") or "" for d in out for call in d.tool_calls or []
    )
    assert json.loads(args) == {"to": EMAIL, "note": "hi"}
    assert [d.finish_reason for d in out if d.finish_reason] == ["stop", "tool_calls"]
    assert out[-1].usage is not None
    # nothing detected in the answer beyond the user's own data: no output part in the header
    assert trace.guard_fields["output"]["placeholders_restored"] >= 1


async def test_stream_block_raises_and_records_verdict() -> None:
    _, masks = _masked("hello")
    trace = _trace()
    trace.guard_header = "action=allow"
    items = [Delta(content=piece) for piece in _split("the host is build.corp.internal, ok", 4)]
    items.append(Delta(finish_reason="stop"))
    apply = SERVICE.stream_filter(GUARDRAILS, policy=POLICY, masks=masks, trace=trace, model="ext")
    seen = ""
    with pytest.raises(ContentBlocked) as caught:
        async for delta in apply(_deltas(items)):
            seen += delta.content or ""
    assert caught.value.code == "output_denied_pattern"
    assert "corp.internal" not in seen
    assert trace.guard_header == "action=allow;output=block;deny=internal_host"


def test_completion_unmasks_json_escaped_tool_arguments_and_redacts() -> None:
    _, masks = _masked(f"mail {EMAIL}")
    secret = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 2
    completion = Completion(
        model="ext",
        choices=[
            Choice(index=0, content=f"done: <EMAIL_1>, key {secret}"),
            Choice(
                index=1,
                content=None,
                tool_calls=[{"id": "c", "function": {"name": "f", "arguments": '{"to": "<EMAIL_1>"}'}}],
            ),
        ],
        usage=Usage(),
    )
    trace = _trace()
    checked = SERVICE.check_completion(
        GUARDRAILS, completion, policy=POLICY, masks=masks, trace=trace, model="ext"
    )
    assert checked.choices[0].content == f"done: {EMAIL}, key [REDACTED_SECRET]"
    tool_calls = checked.choices[1].tool_calls or []
    assert json.loads(tool_calls[0]["function"]["arguments"]) == {"to": EMAIL}
    assert trace.guard_header is not None and "redacted=secret" in trace.guard_header
    assert completion.choices[0].content is not None and "<EMAIL_1>" in completion.choices[0].content


def test_policy_uses_external_when_any_chain_target_is_external() -> None:
    config = GuardrailsConfig()
    guardrails = Guardrails(config)

    def target(local: bool) -> Any:
        return SimpleNamespace(provider=SimpleNamespace(is_local=local))

    targets = {"loc": target(True), "loc2": target(True), "ext": target(False)}
    pick = GuardService.policy_for_route
    assert pick(guardrails, targets, RouteDecision(requested="loc", targets=("loc", "loc2"))) == config.local
    assert (
        pick(guardrails, targets, RouteDecision(requested="loc", targets=("loc", "ext"))) == config.external
    )
    assert (
        pick(guardrails, targets, RouteDecision(requested="loc", targets=("loc",), shadows=("ext",)))
        == config.external
    )
    assert (
        pick(guardrails, targets, RouteDecision(requested="ext", targets=("ext", "loc"))) == config.external
    )
