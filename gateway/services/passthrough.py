"""The upstream's own answer, relayed as sent (OpenAI-compatible upstreams; docs/api.md, "Transparency").

A JSON answer is the upstream's body; a stream is the upstream's chunks, in their order and
grouping. What Prism changes, and why:

* ``id`` becomes the gateway's ``chatcmpl-<x-request-id>`` (it keys the usage record);
* text the output guard filtered or un-masked (PII placeholders restored); in streams the guard holds
  chunks whole until their text is cleared (``gateway/agent/guard_frames.py``), so only a changed
  answer's text moves between chunks, every other field stays where it was;
* a stream always asks the upstream for usage: without ``stream_options.include_usage`` from the
  client, the ``usage`` field and the final usage chunk are not relayed; with it and an upstream that
  sends none, Prism adds its own count as the last chunk (and fills ``usage`` of a JSON answer that
  has none).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.providers.base import Completion, Delta, Usage
from gateway.schemas.openai import completion_id


def completion_body(completion: Completion, *, request_id: str) -> dict[str, Any]:
    """The upstream's ``chat.completion`` body with the gateway's id and the guard's text."""
    raw = completion.raw
    assert raw is not None
    body = dict(raw)
    body["id"] = completion_id(request_id)
    originals = raw.get("choices") or []
    choices: list[Any] = []
    for choice, original in zip(completion.choices, originals, strict=False):
        message = original.get("message") or {}
        if choice.content != message.get("content") or choice.tool_calls != (
            message.get("tool_calls") or None
        ):
            message = {**message, "content": choice.content}
            if choice.tool_calls is not None:
                message["tool_calls"] = choice.tool_calls
            original = {**original, "message": message}
        choices.append(original)
    body["choices"] = choices
    if body.get("usage") is None:
        body["usage"] = completion.usage.as_openai()
    return body


class FrameWriter:
    """Writes a delta's upstream chunks as SSE frames, noting what the relay needs to know of them."""

    __slots__ = ("include_usage", "lossy", "request_id", "sent_usage", "template")

    def __init__(self, *, request_id: str, include_usage: bool) -> None:
        self.request_id = completion_id(request_id)
        self.include_usage = include_usage
        self.sent_usage = False
        self.lossy = False
        """Some chunk carried what a cached text answer cannot replay (logprobs, a refusal, choice > 0)."""
        self.template: dict[str, Any] = {"object": "chat.completion.chunk"}
        """The latest chunk, whose ``model``/``created``/``system_fingerprint`` synthetic frames reuse."""

    def write(self, delta: Delta) -> bytes:
        parts: list[bytes] = []
        for event in delta.frames:
            if "usage" in event:
                if not self.include_usage:
                    if not event.get("choices"):
                        continue  # the usage chunk the client did not ask for
                    del event["usage"]
                elif event["usage"]:
                    self.sent_usage = True
            self.template = event
            for choice in event.get("choices") or ():
                if (
                    choice.get("index")
                    or choice.get("logprobs") is not None
                    or (choice.get("delta") or {}).get("refusal")
                ):
                    self.lossy = True
            event["id"] = self.request_id  # the chunk is ours now: written once, never read again
            parts.append(b"data: " + orjson.dumps(event) + b"\n\n")
        if not delta.frames and (delta.content or delta.tool_calls):  # text the guard released late
            body: dict[str, Any] = {}
            if delta.content:
                body["content"] = delta.content
            if delta.tool_calls:
                body["tool_calls"] = delta.tool_calls
            parts.append(
                self.frame([{"index": delta.index, "delta": body, "logprobs": None, "finish_reason": None}])
            )
        return b"".join(parts)

    def frame(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        """A chunk of Prism's own, shaped like the upstream's latest one."""
        body = {
            key: value
            for key, value in self.template.items()
            if key not in ("choices", "usage", "obfuscation")
        }
        body["id"] = self.request_id
        body["choices"] = choices
        if usage is not None:
            body["usage"] = usage.as_openai()
        elif self.include_usage:
            body["usage"] = None
        return b"data: " + orjson.dumps(body) + b"\n\n"

    @property
    def model(self) -> str | None:
        model = self.template.get("model")
        return model if isinstance(model, str) else None
