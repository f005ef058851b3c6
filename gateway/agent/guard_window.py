"""A stream's first window, judged by the output guard before the client sees anything (issue #22, item 6).

With ``tools.regenerate`` on (``streams: true``), ``guard_output`` does not just hang its filter on
the stream: it pulls the guarded stream until the model has written ``stream_hold_chars``
characters (text and tool call arguments) *and* the guard has released text, or until the stream
ends. Nothing has gone to the client yet — not even the 200 — so a block in that window is an
ordinary flow error: the ``regenerate`` step asks again (or, the second time, the client gets the
400 a whole answer gets). Past the window the stream is relayed as today: a later block ends it
with an error event (``too_late`` in ``prism_guard_regenerations_total``).

The held deltas and the rest of the guarded stream become ``StreamHandle.relay``; the relay sends
them unchanged, so the client sees the same chunks it would have seen, a window later. A
provider error inside the window is not turned into a flow error: it is re-raised by the relay
after the held deltas, exactly where it would have surfaced without the hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from gateway.agent.state import StreamHandle
from gateway.errors import ContentBlocked, GatewayError
from gateway.providers.base import Delta, aclose_quietly
from gateway.providers.tokens import count_text

StreamFilter = Callable[[AsyncIterator[Delta]], AsyncIterator[Delta]]


@dataclass(frozen=True, slots=True)
class BlockedWindow:
    """The guard blocked the stream inside its first window; the upstream stream is closed."""

    error: ContentBlocked
    completion_tokens: int
    """Tokens the model had written when it was cut (counted from the text: the upstream's own
    usage chunk never came)."""


def _size(delta: Delta) -> int:
    size = len(delta.content) if delta.content else 0
    for call in delta.tool_calls or ():
        function = call.get("function")
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            size += len(function["arguments"])
    return size


async def hold_first_window(
    handle: StreamHandle,
    source: AsyncIterator[Delta],
    guard: StreamFilter,
    *,
    hold_chars: int,
    on_late_block: Callable[[ContentBlocked], None],
) -> BlockedWindow | None:
    """Judge the first window of ``source`` (``handle``'s deltas) through ``guard``.

    ``None``: the window passed (or the stream ended clean); ``handle.relay`` now carries the held
    deltas and the rest. Else the block, with the upstream stream closed."""
    seen = 0
    written: list[str] = []

    async def counted() -> AsyncIterator[Delta]:
        nonlocal seen
        async for delta in source:
            size = _size(delta)
            if size:
                seen += size
                if delta.content:
                    written.append(delta.content)
            yield delta

    guarded = guard(counted())
    held: list[Delta] = []
    ended = False
    failure: GatewayError | None = None
    try:
        while True:
            try:
                delta = await guarded.__anext__()
            except StopAsyncIteration:
                ended = True
                break
            held.append(delta)
            if seen >= hold_chars and (delta.content or delta.tool_calls):
                break
    except ContentBlocked as exc:
        await aclose_quietly(guarded)
        await aclose_quietly(source)
        await aclose_quietly(handle.rest)
        return BlockedWindow(exc, count_text("".join(written)))
    except GatewayError as exc:  # a provider failure: relayed where it would have surfaced anyway
        failure = exc
        ended = True
    except BaseException:  # cancelled (the client left before the 200): nothing is relayed
        await aclose_quietly(guarded)
        await aclose_quietly(handle.rest)
        raise
    handle.relay = _resume(held, None if ended else guarded, failure, on_late_block)
    return None


async def _resume(
    held: list[Delta],
    rest: AsyncIterator[Delta] | None,
    failure: GatewayError | None,
    on_late_block: Callable[[ContentBlocked], None],
) -> AsyncIterator[Delta]:
    for delta in held:
        yield delta
    if failure is not None:
        raise failure
    if rest is None:
        return
    try:
        async for delta in rest:
            yield delta
    except ContentBlocked as exc:
        on_late_block(exc)
        raise
    finally:
        await aclose_quietly(rest)
