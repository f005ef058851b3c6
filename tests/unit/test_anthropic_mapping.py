"""The pure mappings between Anthropic's Messages wire format and the gateway's OpenAI-shaped types,
both directions: the ``/v1/messages`` edge (``services/messages_codec.py``, ``messages_stream.py``)
and ``provider: anthropic`` (``providers/anthropic_wire.py``, ``providers/anthropic.py``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.errors import (
    ContextTooLong,
    InvalidRequest,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    UnsupportedParameter,
)
from gateway.providers.anthropic import StreamDecoder
from gateway.providers.anthropic_wire import (
    NATIVE_KEY,
    anthropic_messages,
    completion_from,
    error_for_status,
    native_body,
    request_body,
    usage_from,
)
from gateway.providers.base import Delta, ModelCall
from gateway.schemas.anthropic import MessagesRequest, error_body, error_bytes_from_openai
from gateway.services.messages_codec import chat_input, message_from_completion
from gateway.services.messages_stream import MessageStream

CLAUDE_CODE = {
    "model": "claude",
    "max_tokens": 300,
    "system": [
        {"type": "text", "text": "You are Claude Code."},
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {"role": "user", "content": "read main.py"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "main.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "print(1)"}],
                },
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "text", "text": "and this?"},
            ],
        },
    ],
    "tools": [
        {
            "name": "Read",
            "description": "read a file",
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
        {"type": "web_search_20250305", "name": "web_search"},
    ],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "stop_sequences": ["\n\nHuman:"],
    "metadata": {"user_id": "user_1"},
}


def _chat(raw: dict[str, Any]) -> Any:
    return chat_input(MessagesRequest.model_validate(raw), raw, beta="b1", version="2023-06-01")


def test_a_claude_code_request_as_the_flow_sees_it() -> None:
    chat = _chat(CLAUDE_CODE)
    assert chat.messages == [
        {"role": "system", "content": "You are Claude Code.\nBe brief."},
        {"role": "user", "content": "read main.py"},
        {
            "role": "assistant",
            "content": "Reading.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "Read", "arguments": '{"path":"main.py"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "print(1)"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "and this?"},
            ],
        },
    ]
    params = chat.params
    assert params["max_tokens"] == 300 and params["temperature"] == 1.0  # Anthropic's default, explicit
    assert params["stop"] == ["\n\nHuman:"] and params["user"] == "user_1"
    assert [tool["function"]["name"] for tool in params["tools"]] == [
        "Read"
    ]  # the server tool is Anthropic's
    assert params["tool_choice"] == "required" and params["parallel_tool_calls"] is False
    assert params[NATIVE_KEY]["body"] == CLAUDE_CODE and params[NATIVE_KEY]["beta"] == "b1"
    assert chat.include_usage and chat.prompt_tokens > 0


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (
            [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}],
            "media_type",
        ),
        ([{"type": "image"}], "source"),
        ([{"type": "text"}], "text"),
        ([{"type": "tool_result"}], "tool_use_id"),
        ([{"type": "tool_use", "id": "a", "name": "b", "input": {}}], "cannot appear"),
        ([{"text": "no type"}], "type"),
    ],
)
def test_bad_blocks_are_named(content: list[Any], where: str) -> None:
    raw = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}
    with pytest.raises(InvalidRequest) as refused:
        _chat(raw)
    assert where in refused.value.message and refused.value.status_code == 400


def test_an_answer_as_an_anthropic_message() -> None:
    body = {
        "model": "mock-fast",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": 1}'},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 9,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }
    message = message_from_completion(body, request_id="r1")
    assert message["id"] == "msg_r1" and message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
    ]
    assert message["usage"] == {
        "input_tokens": 20,
        "output_tokens": 9,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 100,
    }
    native = {
        "model": "claude-x",
        "content": [{"type": "thinking", "thinking": "t", "signature": "s"}, *message["content"]],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "output_tokens": 9,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 95,
        },
    }
    kept = message_from_completion(body, request_id="r1", native=native)
    assert kept["content"][0]["type"] == "thinking" and kept["usage"]["cache_creation_input_tokens"] == 5
    assert kept["id"] == "msg_r1" and kept["model"] == "claude-x"
    changed = {
        **native,
        "content": [{"type": "text", "text": "something else"}],
    }  # e.g. an output guard redacted
    assert message_from_completion(body, request_id="r1", native=changed)["content"] == message["content"]


def test_openai_messages_as_anthropic_turns() -> None:
    system, messages = anthropic_messages(
        [
            {"role": "system", "content": "one"},
            {"role": "developer", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"city": "Seoul"}'},
                    },
                    {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "not json"}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": "rain"},
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}],
            },
        ]
    )
    assert system == "one\n\ntwo"
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][0] == {
        "type": "tool_use",
        "id": "c1",
        "name": "w",
        "input": {"city": "Seoul"},
    }
    assert messages[1]["content"][1]["input"] == {}
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "c2", "content": "rain"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
    ]


def _call(**params: Any) -> ModelCall:
    return ModelCall(model="claude-up", messages=[{"role": "user", "content": "hi"}], params=params)


def test_openai_parameters_as_a_messages_request() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = request_body(
        _call(
            temperature=1.7,
            top_p=0.5,
            stop="END",
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "f"}},
            parallel_tool_calls=False,
            user="u",
            extra={"top_k": 5},
        ),
        stream=True,
        default_max_tokens=999,
    )
    assert body == {
        "model": "claude-up",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 999,
        "temperature": 1.0,
        "top_p": 0.5,
        "stop_sequences": ["END"],
        "tools": [{"name": "f", "description": "", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u"},
        "top_k": 5,
        "stream": True,
    }
    with pytest.raises(UnsupportedParameter):
        request_body(_call(n=2), stream=False, default_max_tokens=10)
    with pytest.raises(UnsupportedParameter):
        request_body(
            ModelCall(model="m", messages=[{"role": "user", "content": [{"type": "input_audio"}]}]),
            stream=False,
            default_max_tokens=10,
        )


def test_the_native_body_only_while_the_messages_are_unchanged() -> None:
    chat = _chat(CLAUDE_CODE)
    call = ModelCall(model="claude-up", messages=chat.messages, params=chat.params)
    assert native_body(call) == {**CLAUDE_CODE, "model": "claude-up"}
    masked = [*chat.messages[:-1], {"role": "user", "content": "<EMAIL_1>"}]
    assert native_body(ModelCall(model="claude-up", messages=masked, params=chat.params)) is None


def test_usage_stop_reasons_and_errors() -> None:
    usage = usage_from(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 50,
            "output_tokens": 7,
        }
    )
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (160, 100, 7)
    data = {
        "model": "m",
        "content": [{"type": "text", "text": "a"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    assert completion_from(data, target="t", model="m").choices[0].finish_reason == "length"
    with pytest.raises(ProviderBadResponse):
        completion_from({"content": "x"}, target="t", model="m")
    limited = error_for_status(
        429, {"error": {"type": "rate_limit_error", "message": "slow"}}, target="t", retry_after=3
    )
    assert isinstance(limited, ProviderRateLimited) and limited.retry_after == 3
    overloaded = error_for_status(
        529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, target="t"
    )
    assert (
        isinstance(overloaded, ProviderUnavailable)
        and overloaded.retryable
        and "overloaded_error" in overloaded.message
    )
    assert isinstance(error_for_status(400, {"error": {"message": "bad"}}, target="t"), ProviderRejected)
    assert not error_for_status(401, {}, target="t").retryable
    with pytest.raises(ContextTooLong):
        error_for_status(
            400, {"error": {"message": "prompt is too long: 300000 tokens > 200000"}}, target="t"
        )


def test_stream_events_as_deltas() -> None:
    decoder = StreamDecoder()
    events = [
        {
            "type": "message_start",
            "message": {
                "model": "m",
                "usage": {"input_tokens": 5, "cache_read_input_tokens": 10, "output_tokens": 1},
            },
        },
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "x"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sg"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "1}"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    ]
    deltas = [delta for event in events for delta in decoder.deltas(event, target="t")]
    assert [d.content for d in deltas if d.content] == ["Hi"]
    assert deltas[0] == Delta()  # thinking: an empty delta (progress for the timers, never relayed)
    calls = [call for d in deltas for call in d.tool_calls or ()]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"a":1}'
    assert decoder.finish == "tool_calls" and decoder.stopped
    assert decoder.native["pending"] == [{"type": "thinking", "thinking": "x", "signature": "sg"}]
    assert decoder.native["stop_reason"] == "tool_use" and decoder.native["model"] == "m"
    assert (decoder.usage.prompt_tokens, decoder.usage.cached_tokens, decoder.usage.completion_tokens) == (
        15,
        10,
        12,
    )
    with pytest.raises(ProviderUnavailable):
        StreamDecoder().deltas(
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, target="t"
        )


def _names(frames: bytes) -> list[str]:
    return [line[7:] for line in frames.decode().split("\n") if line.startswith("event: ")]


def test_relay_chunks_as_anthropic_events() -> None:
    stream = MessageStream(request_id="r", model="m", prompt_tokens=7)
    out = stream.start(None, "mock-fast")
    out += stream.chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    out += stream.native_blocks({"pending": [{"type": "thinking", "thinking": "t", "signature": "s"}]})
    out += stream.chunk({"choices": [{"index": 0, "delta": {"content": "Hel"}}]})
    out += stream.chunk({"choices": [{"index": 0, "delta": {"content": "lo"}}]})
    call = {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": '{"x"'}}
    out += stream.chunk({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    out += stream.chunk(
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]}
    )
    out += stream.chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    out += stream.chunk({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4}})
    out += stream.finish(None)
    assert _names(out) == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    frames = [orjson.loads(line[6:]) for line in out.decode().split("\n") if line.startswith("data: ")]
    assert frames[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 7,
            "output_tokens": 4,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    failed = MessageStream(request_id="r", model="m", prompt_tokens=1)
    error = failed.chunk({"error": {"message": "upstream died", "type": "upstream_error"}})
    assert _names(error) == ["error"] and b"overloaded_error" in error


def test_error_envelopes() -> None:
    assert error_body(429, "slow", request_id="r") == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow"},
        "request_id": "r",
    }
    assert error_body(502, "x")["error"]["type"] == "api_error"
    assert error_body(503, "x")["error"]["type"] == "overloaded_error"
    converted = orjson.loads(error_bytes_from_openai(413, b'{"error": {"message": "too big"}}'))
    assert converted == {"type": "error", "error": {"type": "request_too_large", "message": "too big"}}
