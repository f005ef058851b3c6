"""Hypothesis strategies for schema-valid OpenAI Chat Completions answers, JSON and streamed, with
the optional and unknown fields a gateway tends to drop (issue #20)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=24)
WORDS = st.text("abcdefghij klmnop", min_size=1, max_size=12)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
UNKNOWN_KEYS = st.from_regex(r"x_[a-z]{1,8}", fullmatch=True)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=6,
)
UNKNOWN = st.dictionaries(UNKNOWN_KEYS, JSON_VALUES, max_size=3)
LOGPROB = st.floats(-20, 0, allow_nan=False)


@st.composite
def token_logprobs(draw: st.DrawFn) -> dict[str, Any]:
    token = draw(WORDS)
    top = draw(
        st.lists(
            st.fixed_dictionaries(
                {"token": WORDS, "logprob": LOGPROB, "bytes": st.lists(st.integers(0, 255))}
            ),
            max_size=2,
        )
    )
    return {"token": token, "logprob": draw(LOGPROB), "bytes": list(token.encode()), "top_logprobs": top}


def logprobs() -> st.SearchStrategy[dict[str, Any] | None]:
    return st.none() | st.fixed_dictionaries(
        {"content": st.lists(token_logprobs(), min_size=1, max_size=3), "refusal": st.none()}
    )


def usage() -> st.SearchStrategy[dict[str, Any]]:
    counts = st.integers(0, 5000)
    return st.builds(
        lambda prompt, completion, cached, audio, reasoning, accepted, rejected, extra: {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": audio},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": audio,
                "accepted_prediction_tokens": accepted,
                "rejected_prediction_tokens": rejected,
            },
            **extra,
        },
        counts,
        counts,
        counts,
        counts,
        counts,
        counts,
        counts,
        UNKNOWN,
    )


def envelope() -> st.SearchStrategy[dict[str, Any]]:
    """The fields every answer and chunk carries (``id`` is the gateway's own)."""
    return st.fixed_dictionaries(
        {
            "id": st.from_regex(r"chatcmpl-[A-Za-z0-9]{6,12}", fullmatch=True),
            "created": st.integers(1_600_000_000, 1_900_000_000),
            "model": st.sampled_from(["gpt-4o-2024-08-06", "gpt-4o-mini", "llama-3.1-8b", "scripted"]),
            "system_fingerprint": st.none() | st.from_regex(r"fp_[a-f0-9]{10}", fullmatch=True),
        },
        optional={"service_tier": st.sampled_from(["default", "scale", "flex", "priority"])},
    )


@st.composite
def tool_call(draw: st.DrawFn, position: int) -> dict[str, Any]:
    return {
        "id": f"call_{position}_{draw(NAMES)}",
        "type": "function",
        "function": {
            "name": draw(NAMES),
            "arguments": draw(st.sampled_from(['{"a": 1}', '{ "q":"x y" }', "{}"])),
        },
    }


@st.composite
def completion(draw: st.DrawFn, n: int = 1) -> dict[str, Any]:
    """A ``chat.completion`` body with ``n`` choices."""
    choices = []
    for index in range(n):
        kind = draw(st.sampled_from(["text", "refusal", "tools"]))
        message: dict[str, Any] = {"role": "assistant", "content": draw(TEXT) if kind == "text" else None}
        message["refusal"] = draw(TEXT.filter(bool)) if kind == "refusal" else None
        if kind == "tools":
            message["tool_calls"] = [draw(tool_call(k)) for k in range(draw(st.integers(1, 2)))]
        if draw(st.booleans()):
            message["annotations"] = [
                {
                    "type": "url_citation",
                    "url_citation": {
                        "start_index": 0,
                        "end_index": 3,
                        "url": "https://example.com",
                        "title": "t",
                    },
                }
            ]
        message.update(draw(UNKNOWN))
        finish = {"text": "stop", "refusal": "stop", "tools": "tool_calls"}[kind]
        choice = {"index": index, "message": message, "logprobs": draw(logprobs()), "finish_reason": finish}
        choice.update(draw(UNKNOWN))
        choices.append(choice)
    body = {**draw(envelope()), "object": "chat.completion", "choices": choices, "usage": draw(usage())}
    body.update(draw(UNKNOWN))
    return body


@st.composite
def choice_chunks(draw: st.DrawFn, index: int) -> list[dict[str, Any]]:
    """The ``choices`` entries of one choice's stream, in order: role, text or refusal or tool
    calls (each call's head, then its arguments in pieces), finish."""
    out: list[dict[str, Any]] = [
        {"index": index, "delta": {"role": "assistant", "content": "", "refusal": None}}
    ]
    kind = draw(st.sampled_from(["text", "refusal", "tools"]))
    if kind == "text":
        for piece in draw(st.lists(TEXT.filter(bool), min_size=1, max_size=5)):
            out.append({"index": index, "delta": {"content": piece}, "logprobs": draw(logprobs())})
    elif kind == "refusal":
        for piece in draw(st.lists(TEXT.filter(bool), min_size=1, max_size=3)):
            out.append({"index": index, "delta": {"refusal": piece}})
    else:
        for k in range(draw(st.integers(1, 2))):
            call = draw(tool_call(k))
            head = {
                "index": k,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            out.append({"index": index, "delta": {"tool_calls": [head]}})
            for piece in draw(st.lists(st.sampled_from(['{"a"', ": 1", "}", " "]), min_size=1, max_size=4)):
                out.append(
                    {
                        "index": index,
                        "delta": {"tool_calls": [{"index": k, "function": {"arguments": piece}}]},
                    }
                )
    finish = {"text": "stop", "refusal": "stop", "tools": "tool_calls"}[kind]
    out.append({"index": index, "delta": {}, "finish_reason": finish})
    for entry in out:
        entry.setdefault("logprobs", None)
        entry.setdefault("finish_reason", None)
        if draw(st.integers(0, 5)) == 0:
            entry.update(draw(UNKNOWN))
    return out


@st.composite
def stream(draw: st.DrawFn, n: int = 1, with_usage: bool = True) -> list[dict[str, Any]]:
    """The chunks of a stream: the choices interleaved (each in its own order), one choice per chunk,
    then the usage chunk (``choices: []``) when ``with_usage``."""
    base = {**draw(envelope()), "object": "chat.completion.chunk"}
    queues = [draw(choice_chunks(index)) for index in range(n)]
    chunks: list[dict[str, Any]] = []
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        chunk = {**base, "choices": [queue.pop(0)]}
        if with_usage:
            chunk["usage"] = None
        if draw(st.integers(0, 4)) == 0:
            chunk.update(draw(UNKNOWN))
        chunks.append(chunk)
    if with_usage:
        chunks.append({**base, "choices": [], "usage": draw(usage())})
    return chunks


REQUEST_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.sampled_from([0, 0.5, 1.3]),
        "top_p": st.sampled_from([0.1, 1]),
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(0, 5),
        "seed": st.integers(0, 2**31),
        "presence_penalty": st.sampled_from([-1, 0, 1.5]),
        "frequency_penalty": st.sampled_from([-1, 0, 1.5]),
        "max_tokens": st.integers(1, 500),
        "max_completion_tokens": st.integers(1, 500),
        "reasoning_effort": st.sampled_from(["low", "medium", "high"]),
        "service_tier": st.sampled_from(["auto", "default", "flex"]),
        "parallel_tool_calls": st.booleans(),
        "prediction": st.just({"type": "content", "content": "abc"}),
        "modalities": st.just(["text"]),
        "store": st.booleans(),
        "metadata": st.dictionaries(NAMES, WORDS, min_size=1, max_size=2),
        "user": WORDS,
        "stop": st.lists(WORDS, min_size=1, max_size=4),
    },
)
"""Known OpenAI request fields (those a gateway must forward as they are)."""
