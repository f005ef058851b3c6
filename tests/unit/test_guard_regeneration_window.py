"""A stream's first window held until the output guard judged it (gateway/agent/guard_window.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.agent.guard import GuardService
from gateway.agent.guard_window import BlockedWindow, hold_first_window
from gateway.agent.nodes.guard_output import _can_block
from gateway.agent.state import RequestTrace, StreamHandle
from gateway.config.guardrails import GuardrailsConfig
from gateway.errors import ContentBlocked, ProviderTimeout
from gateway.guardrails import Guardrails, MaskTable
from gateway.providers.base import Delta, Usage, aclose_quietly

GUARDRAILS = Guardrails(
    GuardrailsConfig.model_validate(
        {"external": {"output": {"deny_patterns": [{"name": "codename", "pattern": "PROJECT-ORCA"}]}}}
    )
)
POLICY = GUARDRAILS.policy_for(model="ext", is_local=False)


class Upstream:
    """An upstream stream of word deltas; remembers whether it was closed and how far it was read."""

    def __init__(self, text: str, *, fail_after: int | None = None) -> None:
        self.words = [word + " " for word in text.split()]
        self.fail_after = fail_after
        self.read = 0
        self.closed = False

    async def deltas(self) -> AsyncIterator[Delta]:
        try:
            for position, word in enumerate(self.words):
                if self.fail_after is not None and position == self.fail_after:
                    raise ProviderTimeout("ext: stream stalled", target="ext")
                self.read += 1
                yield Delta(content=word)
            yield Delta(finish_reason="stop", usage=Usage(prompt_tokens=5, completion_tokens=len(self.words)))
        finally:
            self.closed = True


def _handle(upstream: Upstream) -> tuple[StreamHandle, AsyncIterator[Delta]]:
    stream = upstream.deltas()
    first = Delta(content=None)  # a role-only first delta, as the relay's first chunk usually is

    async def source() -> AsyncIterator[Delta]:
        yield first
        async for delta in stream:
            yield delta

    handle = StreamHandle(target="ext", model="m", first=first, rest=stream, opened_at=0.0, first_at=0.0)
    return handle, source()


async def _hold(
    upstream: Upstream, hold_chars: int, late: list[ContentBlocked]
) -> tuple[StreamHandle, BlockedWindow | None]:
    handle, source = _handle(upstream)
    trace = RequestTrace(request_id="r1", started_at=0.0, deadline=0.0)
    apply = GuardService().stream_filter(
        GUARDRAILS, policy=POLICY, masks=MaskTable(), trace=trace, model="ext"
    )
    blocked = await hold_first_window(handle, source, apply, hold_chars=hold_chars, on_late_block=late.append)
    return handle, blocked


async def _drain(handle: StreamHandle) -> tuple[str, Exception | None]:
    assert handle.relay is not None
    text: list[str] = []
    try:
        async for delta in handle.relay:
            text.append(delta.content or "")
    except (ContentBlocked, ProviderTimeout) as exc:
        return "".join(text), exc
    finally:
        await aclose_quietly(handle.rest)  # as the relay does
    return "".join(text), None


CLEAN = " ".join(f"word{n}" for n in range(60))


async def test_a_clean_stream_is_held_for_its_window_then_relayed_whole() -> None:
    upstream = Upstream(CLEAN)
    late: list[ContentBlocked] = []
    handle, blocked = await _hold(upstream, 64, late)
    assert blocked is None
    assert 0 < upstream.read < len(upstream.words)  # held only the window, not the whole answer
    text, error = await _drain(handle)
    assert error is None and text.split() == CLEAN.split() and not late
    assert upstream.closed


async def test_a_block_inside_the_window_closes_the_upstream_and_counts_its_tokens() -> None:
    upstream = Upstream("The code name is PROJECT-ORCA and more words follow here")
    late: list[ContentBlocked] = []
    handle, blocked = await _hold(upstream, 128, late)
    assert blocked is not None and blocked.error.code == "output_denied_pattern"
    assert blocked.completion_tokens > 0 and upstream.closed and handle.relay is None


@pytest.mark.parametrize("hold_chars", [0, 64])
async def test_a_block_after_the_window_is_relayed_as_today(hold_chars: int) -> None:
    upstream = Upstream(CLEAN + " PROJECT-ORCA")
    late: list[ContentBlocked] = []
    handle, blocked = await _hold(upstream, hold_chars, late)
    assert blocked is None
    text, error = await _drain(handle)
    assert isinstance(error, ContentBlocked) and text.startswith("word0")
    assert "PROJECT-ORCA" not in text and len(late) == 1 and upstream.closed


async def test_a_provider_failure_inside_the_window_surfaces_in_the_relay() -> None:
    upstream = Upstream(CLEAN, fail_after=3)
    late: list[ContentBlocked] = []
    handle, blocked = await _hold(upstream, 128, late)
    assert blocked is None  # not the guard's business: the relay reports it as it would have
    text, error = await _drain(handle)
    assert isinstance(error, ProviderTimeout) and CLEAN.startswith(text) and not late


async def test_a_client_leaving_during_the_hold_closes_the_upstream() -> None:
    stalled = asyncio.Event()
    closed = asyncio.Event()

    async def hanging() -> AsyncIterator[Delta]:
        try:
            yield Delta(content="word0 ")
            stalled.set()
            await asyncio.Event().wait()  # the model stalls inside the window
            yield Delta(content="never")
        finally:
            closed.set()

    stream = hanging()
    first = Delta(content=None)

    async def source() -> AsyncIterator[Delta]:
        yield first
        async for delta in stream:
            yield delta

    handle = StreamHandle(target="ext", model="m", first=first, rest=stream, opened_at=0.0, first_at=0.0)
    trace = RequestTrace(request_id="r1", started_at=0.0, deadline=0.0)
    apply = GuardService().stream_filter(
        GUARDRAILS, policy=POLICY, masks=MaskTable(), trace=trace, model="ext"
    )
    task = asyncio.create_task(
        hold_first_window(handle, source(), apply, hold_chars=128, on_late_block=lambda _: None)
    )
    await asyncio.wait_for(stalled.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set() and handle.relay is None


def test_only_a_policy_that_can_block_holds_the_window() -> None:
    assert _can_block(POLICY)  # a deny pattern that blocks
    default = Guardrails(GuardrailsConfig())
    assert not _can_block(default.policy_for(model="ext", is_local=False))  # redacts and flags only
    rrn = GuardrailsConfig.model_validate({"external": {"output": {"pii": {"rrn": "block"}}}})
    assert _can_block(Guardrails(rrn).policy_for(model="ext", is_local=False))
