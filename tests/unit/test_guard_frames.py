"""The streamed output guard over upstream chunks (``gateway/agent/guard_frames.py``): chunks are held
whole until the guard released their text, so an answer the guard does not change arrives chunk for
chunk as the upstream sent it; one it changes still keeps every chunk and field, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.agent.guard import GuardService
from gateway.agent.state import RequestTrace
from gateway.config.guardrails import GuardrailsConfig
from gateway.guardrails import Guardrails
from gateway.providers.base import Delta, Usage
from gateway.providers.frames import coalesce, event_deltas

G = Guardrails(GuardrailsConfig())
POLICY = G.policy_for(model="ext", is_local=False)
MASKS = G.check_input([{"role": "user", "content": "mail hong@example.com now"}], policy=POLICY).masks


def _chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    return {"id": "up", "model": "m", "choices": [choice], "x_vendor": 1}


def _stream(pieces: list[str]) -> list[dict[str, Any]]:
    body = [_chunk({"content": p}, logprobs={"content": [{"token": p}]}) for p in pieces]
    return [_chunk({"role": "assistant", "content": ""}), *body, _chunk({}, "stop")]


def _guarded(events: list[dict[str, Any]], *, batch: int = 1) -> list[Delta]:
    pending: list[dict[str, Any]] = []
    deltas: list[Delta] = []
    for start in range(0, len(events), batch):  # events that arrived in one read are coalesced
        deltas += coalesce([d for e in events[start : start + batch] for d in event_deltas(e, None, pending)])
    deltas.append(Delta(finish_reason="stop", usage=Usage(1, 2), frames=tuple(pending)))

    async def run() -> list[Delta]:
        async def source() -> Any:
            for delta in deltas:
                yield delta

        trace = RequestTrace(request_id="r", started_at=0.0, deadline=0.0)
        apply = GuardService().stream_filter(G, policy=POLICY, masks=MASKS, trace=trace, model="ext")
        return [delta async for delta in apply(source())]

    return asyncio.run(run())


def _frames(deltas: list[Delta]) -> list[dict[str, Any]]:
    return [frame for delta in deltas for frame in delta.frames]


def test_an_answer_the_guard_keeps_arrives_chunk_for_chunk() -> None:
    events = _stream(["Hello ", "wor", "ld, how", " are", " you", "?"])
    for batch in (1, 3):
        out = _guarded([dict(e) for e in events], batch=batch)
        assert _frames(out) == events
        assert not [d for d in out if not d.frames and (d.content or d.tool_calls)]


def test_a_changed_answer_keeps_every_chunk_and_field_in_order() -> None:
    events = _stream(["Write to <EMA", "IL_1> today", " and card 4111 1111 ", "1111 1111", " ok"])
    out = _guarded([dict(e) for e in events])
    frames = _frames(out)

    def without_content(frame: dict[str, Any]) -> dict[str, Any]:
        choice = frame["choices"][0]
        delta = {k: v for k, v in choice["delta"].items() if k != "content"}
        return {**frame, "choices": [{**choice, "delta": delta}]}

    assert [without_content(f) for f in frames] == [without_content(e) for e in events]
    text = "".join(f["choices"][0]["delta"].get("content") or "" for f in frames)
    text += "".join(d.content or "" for d in out if not d.frames)
    assert "hong@example.com" in text and "<EMAIL_1>" not in text
    assert "4111" not in text and text.endswith(" ok")
