"""The Responses API's streaming events: a state machine fed with the chat relay's chunks.

The chat relay (``services/delivery.py``) has already done the flow's work — guard filters,
usage record on disk before its last frame, error frame on a failure — so this reads its frames
and emits, in order: ``response.created``, ``response.in_progress``; per output item
``response.output_item.added`` → (``response.content_part.added`` → ``response.output_text.delta``…
→ ``response.output_text.done`` → ``response.content_part.done`` | ``response.function_call_arguments
.delta``… → ``.done``) → ``response.output_item.done``; then ``response.completed`` (or
``response.incomplete`` for a ``length``/``content_filter`` finish, ``response.failed`` when the chat
stream ended with an error frame or without finishing). Every event carries ``sequence_number``.

A tool call's item opens once its ``call_id`` and name are known (the SDKs key function-call items by
``call_id``); arguments that arrive before are held and sent as its first delta.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.schemas.responses_api import ResponsesRequest
from gateway.services import responses_output as out

Finish = Callable[[dict[str, Any]], Awaitable[None]]
"""Called with the final response object before the terminal event (stores it)."""


def event_bytes(event: dict[str, Any]) -> bytes:
    kind = str(event["type"]).encode()
    return b"event: " + kind + b"\ndata: " + orjson.dumps(event) + b"\n\n"


@dataclass(slots=True)
class _Call:
    output_index: int | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""
    sent: int = 0
    """How much of ``arguments`` has been sent as deltas."""


@dataclass
class ResponsesStream:
    request: ResponsesRequest
    request_id: str
    created_at: int
    model: str
    finish: Finish | None = None
    sequence: int = 0
    output: list[dict[str, Any] | None] = field(default_factory=list)
    text: list[str] | None = None
    text_index: int | None = None
    refusal: list[str] | None = None
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    service_tier: str | None = None

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event_bytes(payload)

    def snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        body = out.response_object(
            self.request,
            request_id=self.request_id,
            model=self.model,
            status=status,
            output=[item for item in self.output if item is not None],
            created_at=self.created_at,
            **extra,
        )
        if self.service_tier is not None:
            body["service_tier"] = self.service_tier
        return body

    # -- the message item -------------------------------------------------------------------

    @property
    def _message_index(self) -> int:
        assert self.text_index is not None
        return self.text_index

    def _open_message(self) -> list[bytes]:
        if self.text_index is not None:
            return []
        self.text_index = len(self.output)
        self.output.append(None)
        item = out.message_item(self.request_id, [], "in_progress")
        return [self.event("response.output_item.added", output_index=self.text_index, item=item)]

    def _part_index(self, kind: str) -> int:
        """Content parts are numbered in the order they first appeared."""
        if kind not in self.parts:
            self.parts.append(kind)
        return self.parts.index(kind)

    def _part_event(self, name: str, kind: str, **fields: Any) -> bytes:
        """An event about content part ``kind`` (``text`` or ``refusal``) of the message item."""
        return self.event(
            name,
            item_id=out.message_id(self.request_id),
            output_index=self._message_index,
            content_index=self._part_index(kind),
            **fields,
        )

    def on_text(self, delta: str, logprobs: list[dict[str, Any]]) -> list[bytes]:
        events = self._open_message()
        if self.text is None:
            self.text = []
            events.append(
                self._part_event(
                    "response.content_part.added",
                    "text",
                    part=out.text_part(""),
                )
            )
        self.text.append(delta)
        self.logprobs += logprobs
        events.append(
            self._part_event(
                "response.output_text.delta",
                "text",
                delta=delta,
                logprobs=logprobs,
            )
        )
        return events

    def on_refusal(self, delta: str) -> list[bytes]:
        events = self._open_message()
        if self.refusal is None:
            self.refusal = []
            events.append(
                self._part_event(
                    "response.content_part.added",
                    "refusal",
                    part={"type": "refusal", "refusal": ""},
                )
            )
        self.refusal.append(delta)
        events.append(
            self._part_event(
                "response.refusal.delta",
                "refusal",
                delta=delta,
            )
        )
        return events

    def _close_message(self, status: str) -> list[bytes]:
        if self.text_index is None or self.output[self.text_index] is not None:
            return []
        item_id, index = out.message_id(self.request_id), self.text_index
        parts: list[tuple[int, dict[str, Any]]] = []
        events = []
        if self.text is not None:
            text = "".join(self.text)
            part = out.text_part(text, logprobs=self.logprobs)
            position = self._part_index("text")
            events.append(
                self.event(
                    "response.output_text.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=position,
                    text=text,
                    logprobs=self.logprobs,
                )
            )
            events.append(
                self.event(
                    "response.content_part.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=position,
                    part=part,
                )
            )
            parts.append((position, part))
        if self.refusal is not None:
            refusal = "".join(self.refusal)
            part = {"type": "refusal", "refusal": refusal}
            position = self._part_index("refusal")
            events.append(
                self.event(
                    "response.refusal.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=position,
                    refusal=refusal,
                )
            )
            events.append(
                self.event(
                    "response.content_part.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=position,
                    part=part,
                )
            )
            parts.append((position, part))
        item = out.message_item(
            self.request_id, [part for _, part in sorted(parts, key=lambda p: p[0])], status
        )
        self.output[index] = item
        events.append(self.event("response.output_item.done", output_index=index, item=item))
        return events

    # -- function calls ---------------------------------------------------------------------

    def on_tool_call(self, delta: dict[str, Any]) -> list[bytes]:
        index = delta.get("index")
        call = self.calls.setdefault(index if isinstance(index, int) else 0, _Call())
        given = delta.get("function")
        function: dict[str, Any] = given if isinstance(given, dict) else {}
        if delta.get("id") and call.call_id is None:
            call.call_id = str(delta["id"])
        if function.get("name") and call.name is None:
            call.name = str(function["name"])
        call.arguments += str(function.get("arguments") or "")
        events = (
            []
            if call.output_index is not None or call.call_id is None or call.name is None
            else self._open_call(call)
        )
        return events + self._send_arguments(call)

    def _open_call(self, call: _Call) -> list[bytes]:
        events = self._close_message("completed")  # text before the calls is finished
        call.output_index = len(self.output)
        self.output.append(None)
        item = self._call_item(call, "in_progress")
        item["arguments"] = ""
        return [*events, self.event("response.output_item.added", output_index=call.output_index, item=item)]

    def _call_item(self, call: _Call, status: str) -> dict[str, Any]:
        assert call.output_index is not None
        source = {"id": call.call_id, "function": {"name": call.name, "arguments": call.arguments}}
        return out.call_item(self.request_id, call.output_index, source, status)

    def _send_arguments(self, call: _Call) -> list[bytes]:
        if call.output_index is None or call.sent >= len(call.arguments):
            return []
        piece, call.sent = call.arguments[call.sent :], len(call.arguments)
        item_id = out.call_item_id(self.request_id, call.output_index)
        return [
            self.event(
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=call.output_index,
                delta=piece,
            )
        ]

    def _close_calls(self) -> list[bytes]:
        events: list[bytes] = []
        for position, call in sorted(self.calls.items()):
            if call.output_index is None:  # never named: give it the ids it lacked
                call.call_id = call.call_id or f"call_{self.request_id}_{position}"
                call.name = call.name or ""
                events += self._open_call(call)
                events += self._send_arguments(call)
            assert call.output_index is not None
            if self.output[call.output_index] is not None:
                continue
            item = self._call_item(call, "completed")
            self.output[call.output_index] = item
            item_id = out.call_item_id(self.request_id, call.output_index)
            events.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item_id,
                    output_index=call.output_index,
                    name=call.name,
                    arguments=call.arguments,
                )
            )
            events.append(self.event("response.output_item.done", output_index=call.output_index, item=item))
        return events

    # -- the whole stream -------------------------------------------------------------------

    def on_chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        if chunk.get("service_tier") is not None:
            self.service_tier = str(chunk["service_tier"])
        if isinstance(chunk.get("usage"), dict):
            self.usage = out.usage_of(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            given = choice.get("delta")
            delta: dict[str, Any] = given if isinstance(given, dict) else {}
            if delta.get("content"):
                events += self.on_text(str(delta["content"]), out.logprobs_of(choice))
            if delta.get("refusal"):
                events += self.on_refusal(str(delta["refusal"]))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    events += self.on_tool_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return events

    async def finished(self) -> list[bytes]:
        status, incomplete = out.status_of(self.finish_reason)
        events = self._close_message(status) + self._close_calls()
        final = self.snapshot(status, usage=self.usage, incomplete=incomplete)
        if self.finish is not None:
            await self.finish(final)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [*events, self.event(kind, response=final)]

    def failed(self, error: dict[str, Any]) -> list[bytes]:
        events = self._close_message("incomplete")
        final = self.snapshot("failed", usage=self.usage, error=out.failure_detail(error))
        return [*events, self.event("response.failed", response=final)]
