"""A chat request with server tools: its tool list, its stream kept alive, its answer annotated.

``offer`` decides which server tools the request gets (``gateway/tools/access.py``) and rewrites
the ``tools`` sent upstream: the client's own entries exactly as sent, then the server tools'
full specs in place of the client's references. A request without server tools never gets here
past one check (``wants_tools``), so the hot path is unchanged.

A *streamed* request with server tools runs its rounds with non-streamed upstream calls (a round's
tool calls must be complete before they run). The client's stream opens at once if the loop takes
longer than ``tools.loop.keepalive_s``: SSE comments (``: prism tool round N``) keep it alive
while tools run, then the final answer is streamed as ``chat.completion.chunk``s. A failure after
the stream opened is an ``error`` event in OpenAI's error shape (docs/tools.md, "Streams").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gateway.agent.state import ChatInput, Reply, RequestTrace
from gateway.cache import CachedEntry, replay_chunks
from gateway.errors import GatewayError
from gateway.providers.base import Usage
from gateway.runtime import RuntimeSnapshot
from gateway.security.principal import Principal
from gateway.services.delivery import sse
from gateway.tools.access import route_tools, split_tools, tools_for
from gateway.tools.registry import ToolRegistry

DONE = b"data: [DONE]\n\n"


def wants_tools(chat: ChatInput, snapshot: RuntimeSnapshot) -> bool:
    """Cheap pre-check: the request names tools, or its route offers server tools."""
    return bool(chat.params.get("tools")) or bool(route_tools(snapshot.config, chat.model))


def offer(
    chat: ChatInput, principal: Principal, snapshot: RuntimeSnapshot, registry: ToolRegistry
) -> tuple[list[str], bool]:
    """The server tools of this request (raises ``tool_not_allowed``/``unknown_tool``) and whether
    the request named any itself; rewrites ``chat.params['tools']`` when there are some."""
    requested = split_tools(chat.params.get("tools"))
    names = tools_for(principal, snapshot.config, requested, model=chat.model, available=registry.names)
    if names:
        chat.params = {**chat.params, "tools": [*requested.client, *registry.specs(names)]}
    elif not requested.empty:  # only references, none offered: send no empty list upstream
        chat.params = {**chat.params, "tools": requested.client}
    return names, not requested.empty


def annotate(reply: Reply, trace: RequestTrace) -> Reply:
    """Name the loop's rounds in the answer (``prism_tool_loop``) and a header."""
    books = trace.tools
    if books is None:
        return reply
    reply.headers["x-prism-tool-rounds"] = str(books.rounds)
    if books.stopped:
        reply.headers["x-prism-tool-loop"] = f"stopped={books.stopped}"
    if reply.body is not None:
        reply.body["prism_tool_loop"] = books.as_openai()
        last = reply.body.get("usage")
        if isinstance(last, dict) and books.usage.total_tokens:  # every model call of the loop
            total = Usage(
                prompt_tokens=int(last.get("prompt_tokens", 0)) + books.usage.prompt_tokens,
                completion_tokens=int(last.get("completion_tokens", 0)) + books.usage.completion_tokens,
                reasoning_tokens=books.usage.reasoning_tokens
                + int((last.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0),
                cached_tokens=books.usage.cached_tokens
                + int((last.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
            )
            reply.body["usage"] = total.as_openai()
    return reply


def frames(body: dict[str, Any], *, include_usage: bool, request_id: str) -> list[bytes]:
    entry = CachedEntry(response=body, model_served=str(body.get("model") or ""), usage=body.get("usage"))
    out = [
        sse(item)
        for item in replay_chunks(entry, include_usage=include_usage, request_id=request_id, chunk_chars=64)
    ]
    return [*out, DONE]


async def streamed(
    run: Callable[[], Awaitable[Reply]],
    *,
    keepalive_s: float,
    include_usage: bool,
    trace: RequestTrace,
) -> Reply:
    """Run the flow for a streamed request with server tools (module doc). A failure within the
    first ``keepalive_s`` is raised (a plain error response); later ones are ``error`` events."""
    task = asyncio.ensure_future(run())
    done, _ = await asyncio.wait({task}, timeout=keepalive_s)
    if done:
        reply = task.result()
        assert reply.body is not None
        body = reply.body
        return Reply(headers=reply.headers, model=reply.model, stream=_replay(body, include_usage, trace))

    async def relay() -> AsyncIterator[bytes]:
        try:
            while True:
                finished, _ = await asyncio.wait({task}, timeout=keepalive_s)
                if finished:
                    break
                rounds = trace.tools.rounds if trace.tools is not None else 0
                yield f": prism tool round {rounds}\n\n".encode()
            try:
                reply = task.result()
            except GatewayError as exc:
                yield sse(exc.body())
                return
            assert reply.body is not None
            for frame in frames(reply.body, include_usage=include_usage, request_id=trace.request_id):
                yield frame
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    return Reply(headers={"x-prism-tools": "loop"}, stream=relay())


async def _replay(body: dict[str, Any], include_usage: bool, trace: RequestTrace) -> AsyncIterator[bytes]:
    for frame in frames(body, include_usage=include_usage, request_id=trace.request_id):
        yield frame
