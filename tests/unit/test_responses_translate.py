"""The Responses adapter's pure parts: request → chat, chat answer → response object, and the stream
translator as a property (Hypothesis): for any chat stream — text in any split, tool calls whose
pieces interleave, a refusal, any finish — every event validates against the official SDK's types,
sequence numbers count up from 0, items open before they get deltas and close once, and the final
response holds exactly the text and arguments the chat stream carried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.errors import InvalidRequest
from gateway.schemas.responses_api import parse_request
from gateway.services import responses_output as out
from gateway.services.responses_relay import translate
from gateway.services.responses_stream import ResponsesStream

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def test_items_become_chat_messages() -> None:
    request = parse_request(
        {
            "model": "m",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "let me"}],
                },
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"type": "function_call_output", "call_id": "c2", "output": "two"},
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "data:image/png;base64,AA"}],
                },
            ],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {
                "format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}
            },
            "max_output_tokens": 100,
            "reasoning": {"effort": "low"},
        }
    )
    assert request.instructions == "be brief"  # prepended by the router, not part of the history
    assert [m["role"] for m in request.messages] == ["user", "assistant", "tool", "tool", "user"]
    assistant = request.messages[1]
    assert assistant["content"] == "let me" and [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert request.messages[4]["content"][0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AA"},
    }
    assert request.params["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert request.params["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert request.params["response_format"]["json_schema"]["name"] == "x"
    assert request.params["max_completion_tokens"] == 100
    assert request.params["extra"] == {"reasoning_effort": "low"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"input": "x", "tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": "x", "moderation": {"model": "omni-moderation-latest"}}, "moderation"),
        ({"input": "x", "background_options": {"completion_window": "2h"}}, "background_options"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"input": "x", "metadata": {"k": 1}}, "metadata.k"),
        ({"input": "x", "top_p": 2}, "top_p"),
        ({"input": "x", "stream": "yes"}, "stream"),
        ({"model": 3, "input": "x"}, "model"),
    ],
)
def test_refusals_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request({"model": "m", **body})
    assert caught.value.param == param and caught.value.status_code == 400


def test_chat_completion_becomes_a_valid_response() -> None:
    request = parse_request({"model": "auto", "input": "hi", "metadata": {"a": "b"}})
    body = {
        "model": "served",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {
                    "role": "assistant",
                    "content": "partial",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 1}},
        "service_tier": "flex",
    }
    response = Response.model_validate(out.from_chat_completion(request, request_id="abc", body=body))
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "partial" and response.model == "served"
    assert response.output[1].type == "function_call" and response.output[1].id == "fc_abc_1"
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 1
    assert response.usage.total_tokens == 5 and response.metadata == {"a": "b"}
    assert response.service_tier == "flex"
    replay = out.history_messages([item.model_dump() for item in response.output])
    assert replay == [
        {
            "role": "assistant",
            "content": "partial",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    ]


# -- the stream translator, as a property -----------------------------------------------------------


def _chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


@st.composite
def chat_streams(draw: st.DrawFn) -> tuple[list[bytes], str, dict[str, str], str]:
    """(SSE writes of a chat stream, its text, call_id → arguments, finish reason)."""
    words = draw(st.lists(st.text(min_size=1, max_size=6), max_size=6))
    calls = draw(
        st.lists(st.lists(st.text(max_size=5), min_size=1, max_size=4), max_size=3)
    )  # arguments, in pieces
    # the pieces of every call, in an interleaved order that keeps each call's own order
    schedule = draw(st.permutations([i for i, pieces in enumerate(calls) for _ in pieces]))
    frames = [_chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    frames += [_chunk([{"index": 0, "delta": {"content": w}, "finish_reason": None}]) for w in words]
    sent = [0] * len(calls)
    for index in schedule:
        piece: dict[str, Any] = {"index": index, "function": {"arguments": calls[index][sent[index]]}}
        if sent[index] == 0:
            piece.update(id=f"call_{index}", type="function")
            piece["function"]["name"] = f"tool_{index}"
        sent[index] += 1
        frames.append(_chunk([{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}]))
    finish = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"]))
    frames.append(_chunk([{"index": 0, "delta": {}, "finish_reason": finish}]))
    frames.append(_chunk([], usage={"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}))
    frames.append(b"data: [DONE]\n\n")
    raw = b"".join(frames)
    cuts = sorted(draw(st.sets(st.integers(1, max(len(raw) - 1, 1)), max_size=8)))
    writes = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if raw[a:b]]
    arguments = {f"call_{i}": "".join(pieces) for i, pieces in enumerate(calls)}
    return writes, "".join(words), arguments, finish


async def _collect(writes: list[bytes], stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async def chat() -> AsyncIterator[bytes]:
        for write in writes:
            yield write

    async def finish(body: dict[str, Any]) -> None:
        stored.append(body)

    request = parse_request({"model": "m", "input": "hi"})
    stream = ResponsesStream(request=request, request_id="rid", created_at=1, model="m", finish=finish)
    data = b"".join([piece async for piece in translate(chat(), stream)])
    events = []
    for block in data.split(b"\n\n"):
        if block:
            kind, payload = block.split(b"\n", 1)
            event = orjson.loads(payload.removeprefix(b"data: "))
            assert kind == b"event: " + event["type"].encode()
            events.append(event)
    return events


@settings(max_examples=150, deadline=None)
@given(chat_streams())
def test_any_chat_stream_translates_to_valid_events(
    case: tuple[list[bytes], str, dict[str, str], str],
) -> None:
    writes, text, arguments, finish = case
    stored: list[dict[str, Any]] = []
    events = asyncio.run(_collect(writes, stored))
    for event in events:
        EVENTS.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    final = events[-1]
    expected = "response.completed" if finish in ("stop", "tool_calls") else "response.incomplete"
    assert final["type"] == expected and [final["response"]] == stored
    added = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.added"}
    done = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.done"}
    assert sorted(added) == sorted(done) == list(range(len(added)))  # each item opens and closes once
    for index, item in added.items():
        assert (item["type"], item["id"], item.get("call_id")) == (
            done[index]["type"],
            done[index]["id"],
            done[index].get("call_id"),
        )
    first_seen: dict[int, int] = {}
    for position, event in enumerate(events):
        if "output_index" in event:
            first_seen.setdefault(event["output_index"], position)
            assert events[first_seen[event["output_index"]]]["type"] == "response.output_item.added"
    response = Response.model_validate(final["response"])
    assert response.output_text == text
    assert {
        item.call_id: item.arguments for item in response.output if item.type == "function_call"
    } == arguments
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == text
    assert response.usage is not None and response.usage.total_tokens == 9


def test_an_error_frame_fails_the_response_and_stores_nothing() -> None:
    writes = [
        _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
        _chunk([{"index": 0, "delta": {"content": "half"}, "finish_reason": None}]),
        b'data: {"error": {"message": "upstream died", "type": "upstream_error", '
        b'"code": "upstream_unavailable"}}\n\n',
    ]
    stored: list[dict[str, Any]] = []
    events = asyncio.run(_collect(writes, stored))
    for event in events:
        EVENTS.validate_python(event)
    assert events[-1]["type"] == "response.failed" and stored == []
    assert events[-1]["response"]["error"] == {
        "code": "server_error",
        "message": "upstream died (code: upstream_unavailable)",
    }
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"


def test_a_stream_that_just_stops_is_failed() -> None:
    writes = [_chunk([{"index": 0, "delta": {"content": "cut"}, "finish_reason": None}])]
    events = asyncio.run(_collect(writes, []))
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"].endswith("(code: stream_incomplete)")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "x"])
        | _JSON,
        "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | _JSON,
        "content": st.text(max_size=5)
        | st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(
                        ["input_text", "output_text", "input_image", "input_file", "refusal"]
                    )
                },
                optional={
                    "text": _JSON,
                    "image_url": _JSON,
                    "file_data": _JSON,
                    "refusal": _JSON,
                    "detail": _JSON,
                },
            )
            | _JSON,
            max_size=3,
        )
        | _JSON,
        "call_id": st.text(max_size=5) | _JSON,
        "name": st.text(max_size=5) | _JSON,
        "arguments": st.text(max_size=5) | _JSON,
        "output": st.text(max_size=5) | _JSON,
    },
)
_BODIES = st.fixed_dictionaries(
    {"model": st.text(min_size=1, max_size=5) | _JSON},
    optional={
        "input": st.text(max_size=5) | st.lists(_ITEM | _JSON, max_size=4) | _JSON,
        "tools": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["function", "web_search"]) | _JSON},
                optional={"name": _JSON | st.text(min_size=1, max_size=4), "parameters": _JSON},
            )
            | _JSON,
            max_size=3,
        )
        | _JSON,
        "tool_choice": st.sampled_from(["auto", "none", "required"])
        | st.fixed_dictionaries(
            {"type": st.sampled_from(["function", "allowed_tools"]) | _JSON},
            optional={"name": _JSON, "mode": _JSON, "tools": _JSON},
        )
        | _JSON,
        "text": st.fixed_dictionaries({}, optional={"format": _JSON, "verbosity": _JSON}) | _JSON,
        **dict.fromkeys(
            (
                "instructions",
                "temperature",
                "top_p",
                "max_output_tokens",
                "metadata",
                "store",
                "stream",
                "reasoning",
                "include",
                "truncation",
                "top_logprobs",
                "user",
                "parallel_tool_calls",
                "previous_response_id",
            ),
            _JSON,
        ),
    },
)


@settings(max_examples=400, deadline=None)
@given(_BODIES)
def test_any_body_parses_or_is_refused_by_name(body: dict[str, Any]) -> None:
    try:
        parse_request(body)
    except InvalidRequest as refused:
        assert refused.message and refused.status_code == 400


def test_malformed_chunks_are_skipped_not_fatal() -> None:
    writes = [
        b"data: [1, 2]\n\n",
        _chunk(["not a choice", {"index": 0, "delta": "nope"}]),  # type: ignore[list-item]
        _chunk([{"index": 0, "delta": {"tool_calls": ["x", {"index": "a", "id": "c", "function": "f"}]}}]),
        _chunk([{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}], usage=None),
        b"data: [DONE]\n\n",
    ]
    events = asyncio.run(_collect(writes, []))
    for event in events:
        EVENTS.validate_python(event)
    assert events[-1]["type"] == "response.completed"
    assert Response.model_validate(events[-1]["response"]).output_text == "ok"
