"""A cached answer and its streamed replay."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class CachedEntry:
    """The full non-streamed OpenAI ``chat.completion`` dict plus what the gateway needs to account for it."""

    response: dict[str, Any]
    model_served: str
    usage: dict[str, Any] | None = None
    provider: str | None = None
    created_at: float = field(default_factory=time.time)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "response": self.response,
                "model_served": self.model_served,
                "usage": self.usage,
                "provider": self.provider,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> CachedEntry:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("response"), dict):
            raise ValueError("not a cache entry")
        return cls(
            response=data["response"],
            model_served=str(data["model_served"]),
            usage=data.get("usage"),
            provider=data.get("provider"),
            created_at=float(data.get("created_at") or 0.0),
        )


def _split(text: str, size: int | None) -> list[str]:
    if not text:
        return []
    if not size or size <= 0:
        return [text]
    return [text[i : i + size] for i in range(0, len(text), size)]


def replay_chunks(
    entry: CachedEntry,
    *,
    include_usage: bool,
    request_id: str | None = None,
    chunk_chars: int | None = None,
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` dicts that stream ``entry`` as OpenAI would have.

    Per choice: a role chunk, the content (one chunk, or pieces of ``chunk_chars``), tool-call
    deltas, refusal, then a chunk with an empty delta and the ``finish_reason``. With
    ``include_usage`` every chunk carries ``"usage": null`` and a last chunk has ``choices: []``
    and the usage. ``request_id`` gives the replay a fresh ``chatcmpl-`` id.
    """
    resp = entry.response
    cid = f"chatcmpl-{request_id}" if request_id else str(resp.get("id", "chatcmpl-cached"))
    created = int(resp.get("created") or int(time.time()))
    model = str(resp.get("model") or entry.model_served)
    fingerprint = resp.get("system_fingerprint")
    usage = resp.get("usage") if resp.get("usage") is not None else entry.usage

    def make(choices: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint,
            "choices": choices,
        }
        if include_usage:
            body["usage"] = None
        return body

    def delta_choice(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    out: list[dict[str, Any]] = []
    for pos, choice in enumerate(resp.get("choices") or []):
        index = int(choice.get("index", pos))
        message = choice.get("message") or {}
        out.append(make([delta_choice(index, {"role": message.get("role", "assistant"), "content": ""})]))
        content = message.get("content")
        if isinstance(content, str):
            out.extend(
                make([delta_choice(index, {"content": piece})]) for piece in _split(content, chunk_chars)
            )
        for k, call in enumerate(message.get("tool_calls") or []):
            fn = call.get("function") or {}
            tool_delta = {
                "index": k,
                "id": call.get("id"),
                "type": call.get("type", "function"),
                "function": {"name": fn.get("name"), "arguments": fn.get("arguments", "")},
            }
            out.append(make([delta_choice(index, {"tool_calls": [tool_delta]})]))
        if message.get("refusal"):
            out.append(make([delta_choice(index, {"refusal": message["refusal"]})]))
        out.append(make([delta_choice(index, {}, choice.get("finish_reason") or "stop")]))
    if include_usage:
        last = make([])
        last["usage"] = usage
        out.append(last)
    return out
