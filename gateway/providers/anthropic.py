"""``provider: anthropic``: the native Anthropic Messages API, on the shared lean HTTP client.

``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version`` (and the client's
``anthropic-beta`` when the request came in on ``/v1/messages``); JSON answers and SSE streams
(``message_start`` … ``message_stop``, ``ping``, ``error``) are mapped to the normalised types by
``anthropic_wire.py``. Vendor failures become ``ProviderError``s here: 429 (with ``retry-after``)
is rate limited, 529 ``overloaded_error`` and 5xx are retryable, an ``error`` event mid-stream ends
the stream with that error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from gateway.config.providers import UpstreamHTTPSettings
from gateway.errors import ProviderBadResponse, ProviderTimeout, ProviderUnavailable
from gateway.providers.anthropic_wire import (
    FINISH_REASONS,
    NATIVE_ANSWERS,
    NATIVE_KEY,
    completion_from,
    error_for_status,
    request_body,
    stream_error,
    usage_from,
)
from gateway.providers.base import Completion, Delta, ModelCall, Provider, Usage
from gateway.providers.tokens import count_messages, count_text
from gateway.providers.transport import EndpointFactory
from gateway.providers.wire_http import Endpoint, Response, WireHTTP, encode_headers

API_VERSION = "2023-06-01"


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


class StreamDecoder:
    """Anthropic stream events → ``Delta``s. Tool-use blocks become OpenAI tool-call deltas indexed
    by their order among the tool blocks. Thinking blocks have no OpenAI form: they are not
    relayed as text but collected, once complete, in ``native["pending"]`` for the
    ``/v1/messages`` edge to send in place (``NATIVE_ANSWERS``); while a model thinks, each of its
    events yields an empty ``Delta``, which nothing relays but which counts as the first token and
    keeps the idle watchdog fed (extended thinking easily outlasts ``first_token_s``)."""

    __slots__ = ("finish", "native", "pieces", "stop_reason", "stopped", "thinking", "tools", "usage")

    def __init__(self) -> None:
        self.usage = Usage()
        self.finish: str | None = None
        self.stop_reason: str | None = None
        self.stopped = False
        self.tools: dict[int, int] = {}  # content block index → tool call index
        self.pieces: list[str] = []
        self.native: dict[str, Any] = {"pending": []}
        self.thinking: dict[int, dict[str, Any]] = {}  # content block index → thinking block so far

    def deltas(self, event: Any, *, target: str) -> list[Delta]:
        if not isinstance(event, dict):
            raise ProviderBadResponse(f"{target}: malformed stream event", target=target)
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                self.pieces.append(delta["text"])
                return [Delta(content=delta["text"])]
            if delta.get("type") == "input_json_delta" and event.get("index") in self.tools:
                call = {
                    "index": self.tools[event["index"]],
                    "function": {"arguments": delta.get("partial_json", "")},
                }
                return [Delta(tool_calls=[call])]
            thinking = self.thinking.get(int(event.get("index") or 0))
            if thinking is not None and delta.get("type") == "thinking_delta":
                thinking["thinking"] = thinking.get("thinking", "") + str(delta.get("thinking", ""))
                return [Delta()]  # progress: the first-token and idle timers see a thinking model
            if thinking is not None and delta.get("type") == "signature_delta":
                thinking["signature"] = delta.get("signature")
            return []
        if kind == "content_block_stop":
            finished = self.thinking.pop(int(event.get("index") or 0), None)
            if finished is not None:
                self.native["pending"].append(finished)
            return []
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                position = self.tools[int(event.get("index") or 0)] = len(self.tools)
                call = {
                    "index": position,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [Delta(tool_calls=[call])]
            if block.get("type") == "text" and block.get("text"):
                self.pieces.append(block["text"])
                return [Delta(content=block["text"])]
            if block.get("type") in ("thinking", "redacted_thinking"):
                self.thinking[int(event.get("index") or 0)] = dict(block)
                return [Delta()]  # an empty delta commits the stream: thinking can outlast first_token_s
            return []
        if kind == "message_start":
            message = event.get("message") or {}
            usage_from(message.get("usage"), self.usage)
            self.native.update(model=message.get("model"), usage=dict(message.get("usage") or {}))
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            self.stop_reason = delta.get("stop_reason")
            self.finish = FINISH_REASONS.get(str(self.stop_reason), "stop")
            usage = event.get("usage") or {}
            usage_from(usage, self.usage)
            self.native["stop_reason"] = self.stop_reason
            self.native["stop_sequence"] = delta.get("stop_sequence")
            self.native.setdefault("usage", {}).update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            raise stream_error(event, target=target)
        return []  # ping, unknown future events


class AnthropicProvider(Provider):
    kind = "anthropic"

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
        max_output_tokens: int = 4096,
        endpoints: EndpointFactory | None = None,
        transport: UpstreamHTTPSettings | None = None,
    ) -> None:
        super().__init__(name=name, is_local=is_local)
        self.base_url = base_url.rstrip("/")
        url = self.base_url + ("/messages" if self.base_url.endswith("/v1") else "/v1/messages")
        self._endpoint = (
            endpoints.endpoint(url, transport or UpstreamHTTPSettings()) if endpoints else Endpoint(url)
        )
        self._http = http
        self._timeout_s = timeout_s
        self._connect_s = connect_s
        self._max_tokens = max_output_tokens
        self._api_key = api_key or "not-needed"

    def _headers(self, call: ModelCall, *, stream: bool) -> bytes:
        native = call.params.get(NATIVE_KEY)
        native = native if isinstance(native, dict) else {}
        headers = {
            "x-api-key": self._api_key,
            "anthropic-version": native.get("version") or API_VERSION,
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        if native.get("beta"):
            headers["anthropic-beta"] = native["beta"]
        return encode_headers({**headers, **call.headers})

    async def _post(self, call: ModelCall, *, stream: bool) -> Response:
        body = request_body(call, stream=stream, default_max_tokens=self._max_tokens)
        response = await self._http.post(
            self._endpoint, self._headers(call, stream=stream), orjson.dumps(body), connect_s=self._connect_s
        )
        if response.status >= 400:
            data = _decode(await response.read())
            raise error_for_status(
                response.status, data, target=self.name, retry_after=_retry_after(response.headers)
            )
        return response

    async def complete(self, call: ModelCall) -> Completion:
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._post(call, stream=False)
                raw = await response.read()
        except TimeoutError as exc:
            raise ProviderTimeout(f"{self.name}: upstream timed out", target=self.name) from exc
        except ConnectionError as exc:
            raise ProviderUnavailable(
                f"{self.name}: cannot reach upstream ({exc})", target=self.name
            ) from exc
        data = _decode(raw)
        completion = completion_from(data, target=self.name, model=call.model)
        answers = NATIVE_ANSWERS.get()
        if answers is not None:
            answers[self.name] = data
        return completion

    async def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        decoder = StreamDecoder()
        answers = NATIVE_ANSWERS.get()
        if answers is not None:  # filled as the stream is read: thinking blocks go out in place
            answers[self.name] = decoder.native
        response: Response | None = None
        try:
            async with asyncio.timeout(self._timeout_s) as limit:  # re-armed for every read below
                response = await self._post(call, stream=True)
                loop = asyncio.get_running_loop()
                async for data in _events(response.chunks(), limit, loop, self._timeout_s):
                    event = _decode(data)
                    if event is None:
                        raise ProviderBadResponse(f"{self.name}: undecodable stream event", target=self.name)
                    for delta in decoder.deltas(event, target=self.name):
                        yield delta
                    if decoder.stopped:
                        break
        except TimeoutError as exc:
            raise ProviderTimeout(f"{self.name}: stream stalled", target=self.name) from exc
        except ConnectionError as exc:
            raise ProviderUnavailable(f"{self.name}: stream broken ({exc})", target=self.name) from exc
        finally:
            if response is not None:
                response.close()
        if decoder.finish is None:
            raise ProviderUnavailable(f"{self.name}: stream ended without a stop reason", target=self.name)
        usage = decoder.usage
        if not usage.prompt_tokens and not usage.completion_tokens:
            usage = Usage(
                prompt_tokens=count_messages(call.messages),
                completion_tokens=count_text("".join(decoder.pieces)),
            )
        yield Delta(finish_reason=decoder.finish, usage=usage)


async def _events(
    chunks: AsyncIterator[bytes], limit: asyncio.Timeout, loop: asyncio.AbstractEventLoop, read_s: float
) -> AsyncIterator[bytes]:
    """The SSE ``data`` payloads as they complete; ``limit`` is re-armed before each read (a stalled
    upstream fails the read) and disarmed while the consumer relays."""
    tail = b""
    while True:
        limit.reschedule(loop.time() + read_s)
        chunk = await anext(chunks, b"")
        limit.reschedule(None)
        if chunk:
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
        elif tail:
            lines, tail = [tail], b""
        else:
            return
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
