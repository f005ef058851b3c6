"""OpenAI and any OpenAI-compatible server, spoken directly on the wire over one shared connection pool.

The request body is the client's own OpenAI request (messages, sampling fields, tools,
``response_format``, unknown fields) with the upstream model id, encoded once with orjson; the
answer is decoded once and mapped to the normalised types. Streams are read as SSE lines and
relayed delta by delta. No SDK object, LangChain message or thread hop per request: this is the
default client for ``provider: openai`` (``client: langchain`` selects the LangChain adapter).
HTTP is ``gateway/providers/wire_http.py``'s lean keep-alive client, shared by every such model.

Vendor failures become ``ProviderError``s here (status, in-stream error events, cut connections,
undecodable bodies); deadlines are the graph's (``call_model``), the per-call limits below are a
backstop for callers outside the graph (shadow calls, tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.config.providers import UpstreamHTTPSettings
from gateway.errors import ProviderBadResponse, ProviderTimeout, ProviderUnavailable
from gateway.providers.base import Choice, Completion, Delta, ModelCall, Provider, Usage
from gateway.providers.frames import event_deltas, plain_text
from gateway.providers.tokens import count_messages, count_text
from gateway.providers.transport import EndpointFactory
from gateway.providers.upstream_errors import error_for_status, retry_after_s
from gateway.providers.wire_http import Endpoint, WireHTTP, encode_headers
from gateway.schemas.openai import SAMPLING_FIELDS

__all__ = ["OpenAIWireProvider", "error_for_status", "request_body", "retry_after_s"]


def request_body(call: ModelCall, *, stream: bool) -> dict[str, Any]:
    """The upstream request: the client's OpenAI fields (unknown ones too) with the upstream model id.
    A stream always asks for usage (the books need it); the relay drops it when the client did not."""
    params = call.params
    body: dict[str, Any] = {"model": call.model, "messages": call.messages}
    for key in SAMPLING_FIELDS:
        value = params.get(key)
        if value is not None:
            body[key] = value
    extra = params.get("extra")
    if extra:
        body.update({key: value for key, value in extra.items() if key not in body})
    if stream:
        body["stream"] = True
        options = params.get("stream_options")
        body["stream_options"] = {**options, "include_usage": True} if options else {"include_usage": True}
    return body


def usage_from(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt_details = data.get("prompt_tokens_details") or {}
    completion_details = data.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def completion_from(data: Any, call: ModelCall, *, target: str) -> Completion:
    """A non-streamed answer → ``Completion`` (tokens counted here when the upstream sent no usage)."""
    try:
        raw_choices = data["choices"]
        choices = [
            Choice(
                index=int(choice.get("index", position)),
                content=choice["message"].get("content"),
                finish_reason=choice.get("finish_reason") or "stop",
                tool_calls=choice["message"].get("tool_calls") or None,
            )
            for position, choice in enumerate(raw_choices)
        ]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ProviderBadResponse(f"{target}: malformed completion", target=target) from exc
    if not choices:
        raise ProviderBadResponse(f"{target}: completion without choices", target=target)
    usage = usage_from(data.get("usage")) or Usage(
        prompt_tokens=count_messages(call.messages),
        completion_tokens=sum(count_text(choice.content or "") for choice in choices),
    )
    return Completion(model=str(data.get("model") or call.model), choices=choices, usage=usage, raw=data)


class StreamState:
    """What an SSE relay saw so far: finish reason, usage, text relayed, frames waiting for a delta."""

    __slots__ = ("finish", "pending", "pieces", "usage")

    def __init__(self) -> None:
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.pieces: list[str] = []
        self.pending: list[dict[str, Any]] = []

    @property
    def relayed(self) -> int:
        """Tokens of the text relayed so far (counted once, only when the upstream sent no usage)."""
        return count_text("".join(self.pieces))

    def batch(self, batch: list[bytes], *, target: str) -> list[Delta]:
        """The SSE ``data`` payloads that arrived together → the deltas to relay: consecutive text
        chunks of one choice as one delta holding all of them (one guard scan, one write; the
        client still gets every chunk), any other chunk through ``deltas``."""
        out: list[Delta] = []
        texts: list[str] = []
        frames: list[dict[str, Any]] = []
        run_index = 0
        for data in batch:
            event = _decode(data)
            if event is None:
                raise ProviderBadResponse(f"{target}: undecodable stream event", target=target)
            text = plain_text(event)
            if text is not None:
                index, piece = text
                if frames and index != run_index:
                    out.append(Delta(content="".join(texts), index=run_index, frames=tuple(frames)))
                    texts, frames = [], []
                if not frames and self.pending:
                    frames += self.pending
                    self.pending.clear()
                run_index = index
                texts.append(piece)
                frames.append(event)
                self.pieces.append(piece)
                continue
            if frames:
                out.append(Delta(content="".join(texts), index=run_index, frames=tuple(frames)))
                texts, frames = [], []
            out += self.deltas(event, target=target)
        if frames:
            out.append(Delta(content="".join(texts), index=run_index, frames=tuple(frames)))
        return out

    def deltas(self, event: Any, *, target: str) -> list[Delta]:
        """One decoded SSE ``data`` payload → the deltas to relay (an in-stream error raises).

        Each delta carries its upstream chunk (``Delta.frames``); a chunk with nothing to account (a
        role chunk) waits in ``pending`` and leaves as a leading frame of the next delta."""
        if not isinstance(event, dict):
            raise ProviderBadResponse(f"{target}: malformed stream event", target=target)
        if "error" in event:
            raise ProviderUnavailable(f"{target}: upstream reported an error mid-stream", target=target)
        usage = event.get("usage")
        if usage:
            self.usage = usage_from(usage)
        try:
            out = event_deltas(event, self.usage if usage else None, self.pending)
        except (AttributeError, TypeError, ValueError) as exc:  # choices/delta of the wrong shape
            raise ProviderBadResponse(f"{target}: malformed stream event", target=target) from exc
        for delta in out:
            if delta.content:
                self.pieces.append(delta.content)
            if delta.finish_reason:
                self.finish = delta.finish_reason
        return out


class OpenAIWireProvider(Provider):
    kind = "openai"
    supports_n = True

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str | None,
        http: WireHTTP,
        is_local: bool,
        timeout_s: float,
        connect_s: float,
        endpoints: EndpointFactory | None = None,
        transport: UpstreamHTTPSettings | None = None,
    ) -> None:
        """``endpoints``/``transport``: how to reach the upstream (proxy, TLS, pool idle time); a
        direct connection with the pool's defaults without them."""
        super().__init__(name=name, is_local=is_local)
        self.base_url = base_url.rstrip("/")
        url = self.base_url + "/chat/completions"
        self._endpoint = (
            endpoints.endpoint(url, transport or UpstreamHTTPSettings()) if endpoints else Endpoint(url)
        )
        self._http = http
        self._timeout_s = timeout_s
        fixed = {"Authorization": f"Bearer {api_key or 'not-needed'}", "Content-Type": "application/json"}
        self._headers = encode_headers({**fixed, "Accept": "application/json"})
        self._stream_headers = encode_headers({**fixed, "Accept": "text/event-stream"})
        self._connect_s = connect_s

    def _request_headers(self, call: ModelCall, fixed: bytes) -> bytes:
        return fixed + encode_headers(call.headers) if call.headers else fixed

    async def complete(self, call: ModelCall) -> Completion:
        payload = orjson.dumps(request_body(call, stream=False))
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._http.post(
                    self._endpoint,
                    self._request_headers(call, self._headers),
                    payload,
                    connect_s=self._connect_s,
                )
                raw = await response.read()
        except TimeoutError as exc:
            raise ProviderTimeout(f"{self.name}: upstream timed out", target=self.name) from exc
        except ConnectionError as exc:
            raise ProviderUnavailable(
                f"{self.name}: cannot reach upstream ({exc})", target=self.name
            ) from exc
        status, headers = response.status, response.headers
        data = _decode(raw)
        if status >= 400:
            raise error_for_status(status, data, target=self.name, headers=headers)
        if data is None:
            raise ProviderBadResponse(f"{self.name}: undecodable completion", target=self.name)
        return completion_from(data, call, target=self.name)

    async def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        payload = orjson.dumps(request_body(call, stream=True))
        state = StreamState()
        response = None
        try:
            async with asyncio.timeout(self._timeout_s) as limit:  # re-armed for every read below
                response = await self._http.post(
                    self._endpoint,
                    self._request_headers(call, self._stream_headers),
                    payload,
                    connect_s=self._connect_s,
                )
                if response.status >= 400:
                    raise error_for_status(
                        response.status,
                        _decode(await response.read()),
                        target=self.name,
                        headers=response.headers,
                    )
                loop = asyncio.get_running_loop()
                async for batch in _event_batches(response.chunks(), limit, loop, self._timeout_s):
                    for delta in state.batch(batch, target=self.name):
                        yield delta
        except TimeoutError as exc:
            raise ProviderTimeout(f"{self.name}: stream stalled", target=self.name) from exc
        except ConnectionError as exc:
            raise ProviderUnavailable(f"{self.name}: stream broken ({exc})", target=self.name) from exc
        finally:
            if response is not None:
                response.close()  # a stream left early: its connection is not reused
        if state.finish is None:
            raise ProviderUnavailable(f"{self.name}: stream ended without a finish reason", target=self.name)
        usage = state.usage or Usage(
            prompt_tokens=count_messages(call.messages), completion_tokens=state.relayed
        )
        yield Delta(finish_reason=state.finish, usage=usage, frames=tuple(state.pending))


async def _event_batches(
    chunks: AsyncIterator[bytes], limit: asyncio.Timeout, loop: asyncio.AbstractEventLoop, read_s: float
) -> AsyncIterator[list[bytes]]:
    """The SSE ``data`` payloads, in batches of what had already arrived together.

    Each read takes every byte already received (it waits only when nothing is), so a batch never
    waits for more data: an event is relayed as soon as its line is complete. A line split across
    reads is carried over; ``[DONE]`` ends the stream. ``limit`` is re-armed to ``read_s`` before
    each read (a stalled upstream fails the read, not the whole stream's duration)."""
    tail = b""
    while True:
        limit.reschedule(loop.time() + read_s)
        chunk = await anext(chunks, b"")
        limit.reschedule(None)  # disarmed while the batch is relayed (the consumer's time, not ours)
        if chunk:
            lines = (tail + chunk).split(b"\n") if tail else chunk.split(b"\n")
            tail = lines.pop()
        elif tail:  # the last line had no newline
            lines, tail = [tail], b""
        else:
            return
        batch: list[bytes] = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # comments, event names, blank separators
            data = line[5:].strip()
            if data == b"[DONE]":
                if batch:
                    yield batch
                return
            batch.append(data)
        if batch:
            yield batch


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
