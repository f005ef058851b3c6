"""Framing the answer for the client: JSON, a cached answer (JSON or SSE replay), or the SSE relay.

``Delivery`` is the flow's ``DeliveryPort``, called by the ``deliver`` node. The relay sends the
first delta the call step waited for, then the rest through the output guard's filters and the
idle/drain watchdog, and closes the request's books *before* its last frame: usage is durable
before ``[DONE]`` (docs/resilience.md, "The usage ledger"), and a stream cut by the client or the
upstream is still recorded, with the tokens relayed so far.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import structlog

from gateway.agent.state import PipelineState, Reply, StreamHandle
from gateway.cache import CachedEntry, replay_chunks
from gateway.errors import GatewayError, ProviderError, ProviderTimeout
from gateway.observability import metrics
from gateway.providers.base import Delta, Usage, aclose_quietly
from gateway.providers.tokens import count_text
from gateway.routing.router import RouteDecision
from gateway.schemas.openai import chat_completion, chunk, completion_id
from gateway.services import conversations
from gateway.services.accounting import RequestBooks, served_by
from gateway.services.drain import DRAIN
from gateway.services.passthrough import FrameWriter, completion_body
from gateway.usage.record import UsageStatus

log = structlog.get_logger("prism.completion")


def sse(data: Mapping[str, Any] | bytes) -> bytes:
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    return b"data: " + payload + b"\n\n"


def route_header(route: RouteDecision, served: str | None, sticky_source: str | None) -> str:
    """``x-prism-route``: the route's label, naming the model that answered and, for an experiment,
    where the arm's sticky key came from (issue #26). ``/v1/route/explain`` reports the same."""
    label = route.label.replace(f"model={route.targets[0]}", f"model={served}") if served else route.label
    if route.experiment is not None and sticky_source is not None:
        label += f";sticky={sticky_source}"
    return label


class Delivery:
    def __init__(self, books: RequestBooks, *, sticky_source: str | None, cache_lookup: bool) -> None:
        self.books = books
        self.sticky_source = sticky_source
        self.cache_lookup = cache_lookup

    def answer(self, state: PipelineState) -> Reply:
        handle = state.get("stream")
        headers = self.headers(state)
        if handle is not None:
            # The relay closes the books itself (the settle node does not run for a live stream):
            # the record learns its route (intent, tier, experiment arm) here, as settle's would.
            self.books.describe(state.get("route"))
            return Reply(headers=headers, model=handle.target, stream=self._relay(handle))
        completion = state.get("completion")
        if completion is None:
            raise RuntimeError("the flow delivers neither a completion nor a stream")
        if completion.raw is not None:  # an OpenAI-compatible upstream's own body
            body = completion_body(completion, request_id=self.books.trace.request_id)
        else:
            body = chat_completion(
                request_id=self.books.trace.request_id,
                model=completion.model,
                choices=[choice.as_openai() for choice in completion.choices],
                usage=completion.usage.as_openai(),
            )
        return Reply(headers=headers, body=body, model=served_by(self.books.trace))

    def headers(self, state: PipelineState) -> dict[str, str]:
        books = self.books
        trace, route = books.trace, state.get("route")
        headers = {"x-prism-cache": "miss" if trace.cache_key and self.cache_lookup else "bypass"}
        handle = state.get("stream")
        served = handle.target if handle is not None else served_by(trace)
        if served:
            headers["x-prism-model"] = served
        if route is not None:
            headers["x-prism-route"] = route_header(route, served, self.sticky_source)
        if trace.fallback_from is not None:
            headers["x-prism-fallback"] = f"{trace.fallback_from}->{served}"
        if trace.guard_header:
            headers["x-prism-guard"] = trace.guard_header
        if books.ticket is not None:
            headers.update(books.ticket.headers())
        return headers

    def cached(self, cached: dict[str, Any]) -> Reply:
        """A stored answer in the shape the client asked for (JSON or SSE), as a cache hit."""
        books = self.books
        request_id = books.trace.request_id
        served = books.cache_served or str(cached.get("model") or "")
        headers = {
            "x-prism-cache": "hit",
            "x-prism-model": served,
            **(books.ticket.headers() if books.ticket else {}),
        }
        if not books.chat.stream:
            body = {**cached, "id": completion_id(request_id), "created": int(time.time())}
            return Reply(headers=headers, body=body, model=served)
        entry = CachedEntry(response=cached, model_served=served, usage=cached.get("usage"))
        chunks = replay_chunks(entry, include_usage=books.chat.include_usage, request_id=request_id)

        async def replay() -> AsyncIterator[bytes]:
            for item in chunks:
                yield sse(item)
            yield b"data: [DONE]\n\n"
            await _store_quietly(books, conversations.answer_text(cached), served)

        return Reply(headers=headers, stream=replay(), model=served)

    def watched(self, handle: StreamHandle) -> AsyncIterator[Delta]:
        return self._watch(handle, self.books.snapshot.targets[handle.target].config.timeouts.idle_s)

    @staticmethod
    def _watch(handle: StreamHandle, idle_s: float) -> AsyncIterator[Delta]:
        return _prepend(handle.first, DRAIN.guard(handle.rest, idle_s, handle.target))

    async def _relay(self, handle: StreamHandle) -> AsyncIterator[bytes]:
        books = self.books
        chat, trace, snapshot, record = books.chat, books.trace, books.snapshot, books.record
        target = snapshot.targets[handle.target]
        idle_s = target.config.timeouts.idle_s
        created = int(time.time())
        include_usage = chat.include_usage
        request_id = trace.request_id
        relayed = 0  # tokens relayed, counted once from ``text`` where needed (cheaper than per chunk)
        text: list[str] = []
        # the text of choice 0, for the conversation store (collected only when there is one)
        first_choice: list[str] | None = [] if books.conversation is not None else None
        usage: Usage | None = None
        status = UsageStatus.INCOMPLETE
        error: GatewayError | None = None
        finish: str | None = None
        saw_tool_calls = False
        closing: list[bytes] = []  # the last frames, sent in one write
        ttft = handle.first_at - trace.started_at
        record.ttft_ms = round(ttft * 1000, 3)
        model_label = snapshot.model_label(handle.target)
        metrics.TIME_TO_FIRST_TOKEN.labels(model=model_label).observe(ttft)
        metrics.OPEN_STREAMS.inc()

        def frame(choices: list[dict[str, Any]]) -> bytes:
            return sse(
                chunk(
                    request_id=request_id,
                    model=handle.model,
                    created=created,
                    choices=choices,
                    with_usage_field=include_usage,
                )
            )

        # An OpenAI-compatible upstream's chunks are relayed as sent (``passthrough.py``); other
        # providers' deltas are framed here.
        writer = (
            FrameWriter(request_id=request_id, include_usage=include_usage) if handle.first.frames else None
        )
        deltas = handle.relay if handle.relay is not None else self._watch(handle, idle_s)
        for apply in handle.filters:
            deltas = apply(deltas)
        try:
            if writer is None:
                yield frame(
                    [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
            async for delta in deltas:
                if writer is not None:
                    if delta.content:
                        text.append(delta.content)
                        if first_choice is not None and delta.index == 0:
                            first_choice.append(delta.content)
                    saw_tool_calls = saw_tool_calls or bool(delta.tool_calls)
                    if delta.usage is not None:
                        usage = delta.usage
                    if delta.finish_reason is not None:
                        finish = delta.finish_reason
                    out = writer.write(delta)
                    if delta.finish_reason is not None or delta.usage is not None:
                        closing.append(out)  # leaves with [DONE], once the books are closed
                    elif out:
                        if closing:  # another choice finished before this one (n > 1): keep the order
                            out = b"".join(closing) + out
                            closing.clear()
                        yield out
                    continue
                if delta.content or delta.tool_calls:
                    body: dict[str, Any] = {}
                    if delta.content:
                        body["content"] = delta.content
                        text.append(delta.content)
                        if first_choice is not None and delta.index == 0:
                            first_choice.append(delta.content)
                    if delta.tool_calls:
                        body["tool_calls"] = delta.tool_calls
                        saw_tool_calls = True
                    out = frame(
                        [{"index": delta.index, "delta": body, "logprobs": None, "finish_reason": None}]
                    )
                    if closing:  # another choice finished before this one (n > 1): keep the order
                        out = b"".join(closing) + out
                        closing.clear()
                    yield out
                if delta.usage is not None:
                    usage = delta.usage
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
                    # held back to leave in one write with what follows: the usage chunk and
                    # [DONE] once the books are closed, or the next choice's text (n > 1)
                    closing.append(
                        frame(
                            [{"index": delta.index, "delta": {}, "logprobs": None, "finish_reason": finish}]
                        )
                    )
            if finish is None:
                raise ProviderTimeout(
                    f"{handle.target}: stream ended without finishing", target=handle.target
                )
            if usage is None:
                relayed = count_text("".join(text))
            final = usage or Usage(prompt_tokens=chat.prompt_tokens, completion_tokens=relayed)
            if writer is not None:
                if include_usage and not writer.sent_usage:
                    closing.append(writer.frame([], usage=final))
            elif include_usage:
                closing.append(
                    sse(
                        chunk(
                            request_id=request_id,
                            model=handle.model,
                            created=created,
                            choices=[],
                            usage=final.as_openai(),
                        )
                    )
                )
            status = UsageStatus.OK
            if trace.shadow_pairs:  # the shadows start when the books close: give them the answer
                trace.answer = "".join(text)
            # The books close before the last frame: after it the client may leave and, during a
            # shutdown, this generator may never be resumed again.
            await books.close(usage=usage or final, served=handle.target, status=status, http_status=200)
            closing.append(b"data: [DONE]\n\n")
            yield b"".join(closing)
            if first_choice is not None:
                await _store_quietly(books, "".join(first_choice), handle.target)
        except GatewayError as exc:
            error = exc
            record.error_type = exc.code
            relayed = count_text("".join(text))
            log.warning("stream_failed", target=handle.target, error=exc.code, relayed_tokens=relayed)
            if trace.shadow_pairs:
                trace.answer = "".join(text)
            if isinstance(exc, ProviderError) and exc.retryable:  # a death mid-answer counts too
                snapshot.router.circuits.record_failure(handle.target)
            cut = Usage(
                prompt_tokens=usage.prompt_tokens if usage else chat.prompt_tokens, completion_tokens=relayed
            )
            await books.close(usage=cut, served=handle.target, status=status, http_status=200)
            closing.append(sse(exc.body()))
            yield b"".join(closing)
        finally:
            # Account first, synchronously: once the client is gone or the server drains, this task may
            # be cancelled and every later await in this block raises at once.
            metrics.OPEN_STREAMS.dec()
            if status is UsageStatus.OK and usage is not None:
                final_usage = usage
            else:
                final_usage = Usage(
                    prompt_tokens=usage.prompt_tokens if usage else chat.prompt_tokens,
                    completion_tokens=relayed or count_text("".join(text)),
                )
            if error is not None:
                record.error_type = error.code
            elapsed = time.perf_counter() - handle.first_at
            if final_usage.completion_tokens > 1:
                metrics.TIME_PER_OUTPUT_TOKEN.labels(model=model_label).observe(
                    elapsed / (final_usage.completion_tokens - 1)
                )
            if trace.shadow_pairs:
                trace.answer = "".join(text)
            try:
                await books.close(usage=final_usage, served=handle.target, status=status, http_status=200)
                # the answer's body is built only when it will be written (``books.store`` checks again)
                if (
                    status is UsageStatus.OK
                    and books.cache_write
                    and trace.cache_key
                    and not saw_tool_calls
                    and not (writer is not None and writer.lossy)
                ):
                    body_out = chat_completion(
                        request_id=request_id,
                        model=(writer.model if writer is not None else None) or handle.model,
                        usage=final_usage.as_openai(),
                        choices=[
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "".join(text)},
                                "finish_reason": finish,
                                "logprobs": None,
                            }
                        ],
                    )
                    await books.store(body_out, handle.target)
            finally:
                await aclose_quietly(handle.rest)


async def _store_quietly(books: RequestBooks, answer: str | None, model: str | None) -> None:
    """The conversation store after a complete stream: the client has its answer, so a failure is
    logged, not sent."""
    try:
        await books.store_conversation(answer, model)
    except Exception:
        log.warning("conversation_store_failed", exc_info=True)


async def _prepend(first: Delta, rest: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    yield first
    async for delta in rest:
        yield delta
