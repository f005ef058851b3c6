"""Waiting on conditions instead of clocks (STYLE.md, habit 18).

``eventually`` (async) and ``wait_until`` (blocking) poll a condition until it holds, failing with
``what`` after a generous bound: a loaded machine makes them slower, never wrong. A passing test
never waits out the bound; only a failing one does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

BOUND_S = 15.0
"""Generous on purpose: 2 cores shared by several test runs can stall a process for seconds."""


async def eventually(
    check: Callable[[], T | Awaitable[T]], what: str, *, within_s: float = BOUND_S, poll_s: float = 0.01
) -> T:
    """The first truthy value of ``check()`` (a function or a coroutine function)."""
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {within_s:g}s: {what}"
        await asyncio.sleep(poll_s)


def wait_until(check: Callable[[], T], what: str, *, within_s: float = BOUND_S, poll_s: float = 0.05) -> T:
    """Blocking twin of :func:`eventually`, for tests that drive processes from synchronous code."""
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {within_s:g}s: {what}"
        time.sleep(poll_s)
