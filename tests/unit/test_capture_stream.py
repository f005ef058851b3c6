"""``capture_stream`` reads SSE events, not writes: one chunk may hold several events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from gateway.services.conversations import capture_stream


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def _relay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_events_merged_into_one_write_are_all_seen() -> None:
    done: list[str | None] = []

    async def on_done(text: str | None) -> None:
        done.append(text)

    text = _event({"choices": [{"index": 0, "delta": {"content": "Hello, "}}]})
    closing = (
        _event({"choices": [{"index": 0, "delta": {"content": "world"}}]})
        + _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        + _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
        + b"data: [DONE]\n\n"
    )
    out = [chunk async for chunk in capture_stream(_relay([text, closing]), on_done)]
    assert out == [text, closing]  # relayed unchanged
    assert done == ["Hello, world"]


async def test_an_unfinished_stream_is_not_stored() -> None:
    done: list[str | None] = []

    async def on_done(text: str | None) -> None:
        done.append(text)

    chunks = [_event({"choices": [{"index": 0, "delta": {"content": "cut"}}]})]
    assert [c async for c in capture_stream(_relay(chunks), on_done)] == chunks
    assert done == []
