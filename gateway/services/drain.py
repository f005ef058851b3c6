"""Graceful shutdown: flip readiness at SIGTERM, let work finish, then end the streams still open.

uvicorn, on SIGTERM, stops accepting connections, waits for the open ones up to
``--timeout-graceful-shutdown``, cancels what is left, and only then runs the lifespan
shutdown (usage and shadow flushes). ``install_sigterm`` chains a handler in front of
uvicorn's, so that at the signal:

1. ``draining`` flips at once (``/readyz`` answers 503; with ``GATEWAY_DRAIN_DELAY_S`` the
   server keeps accepting for that long so load balancers see it before the port closes);
2. after ``GATEWAY_DRAIN_TIMEOUT_S`` every stream still open ends with an OpenAI-style error
   event (code ``server_shutting_down``, no ``[DONE]``) and its usage record is written as
   ``incomplete`` — before uvicorn's own, longer, timeout would cancel it without a word.

Streams read their upstream through ``Drain.guard`` (which is also the idle guard).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any, TypeVar

import structlog

from gateway.errors import ProviderTimeout, ServerShuttingDown

log = structlog.get_logger("prism.drain")

T = TypeVar("T")


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self.open_streams = 0
        self._expired: asyncio.Future[None] | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._waiting: set[asyncio.Timeout] = set()
        """Timeouts of the streams now waiting on their upstream (fired at once when the drain expires)."""

    def on_begin(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def _future(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        if self._expired is None or self._expired.get_loop() is not loop:
            self._expired = loop.create_future()
        return self._expired

    @property
    def expired(self) -> bool:
        return self._expired is not None and self._expired.done()

    def begin(self, timeout_s: float) -> None:
        """Start draining (idempotent): readiness off now, open streams ended after ``timeout_s``."""
        if self.draining:
            return
        self.draining = True
        for callback in self._callbacks:
            callback()
        log.info("drain_started", timeout_s=timeout_s, open_streams=self.open_streams)
        asyncio.get_running_loop().call_later(timeout_s, self.expire)

    def expire(self) -> None:
        future = self._future()
        if not future.done():
            log.warning("drain_expired", open_streams=self.open_streams)
            future.set_result(None)
            # Streams waiting on their upstream now stop waiting; the others stop at their next item.
            now = asyncio.get_running_loop().time()
            for limit in list(self._waiting):
                limit.reschedule(now)

    def reset(self) -> None:
        self.draining = False
        self._expired = None
        self._callbacks.clear()
        self._waiting.clear()

    async def guard(self, iterator: AsyncIterator[T], idle_s: float, target: str) -> AsyncIterator[T]:
        """Relay ``iterator``; fail it after ``idle_s`` without an item, or when the drain expires.

        One ``asyncio.timeout`` per stream, re-armed for each item (no task or ``asyncio.wait``
        per chunk); while the stream waits on its upstream its timeout is registered, so an
        expiring drain fires it at once. The timeout is disarmed while the item is being
        relayed to the client (the generator is suspended at ``yield``)."""
        loop = asyncio.get_running_loop()
        self.open_streams += 1
        try:
            async with asyncio.timeout(None) as limit:
                while True:
                    if self.expired:
                        raise ServerShuttingDown(
                            "The server is shutting down; the stream was ended before it finished"
                        )
                    limit.reschedule(loop.time() + idle_s)
                    self._waiting.add(limit)
                    try:
                        item = await iterator.__anext__()
                    except StopAsyncIteration:
                        return
                    finally:
                        self._waiting.discard(limit)
                        if not limit.expired():  # an expired one cannot be re-armed (it raises below)
                            limit.reschedule(None)
                    yield item
        except TimeoutError as exc:
            if self.expired:
                raise ServerShuttingDown(
                    "The server is shutting down; the stream was ended before it finished"
                ) from exc
            raise ProviderTimeout(f"{target}: stream stalled for {idle_s:g}s", target=target) from exc
        finally:
            self.open_streams -= 1


DRAIN = Drain()
"""One per process (each uvicorn worker is a process)."""


def install_sigterm(*, delay_s: float, timeout_s: float) -> bool:
    """Put the drain in front of the server's own SIGTERM/SIGINT handler (uvicorn's ``handle_exit``).

    Only when a Python handler is installed (under uvicorn); returns whether it was.
    """
    loop = asyncio.get_running_loop()
    installed = False
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            first = not DRAIN.draining
            loop.call_soon_threadsafe(DRAIN.begin, timeout_s)
            if first and delay_s > 0:
                loop.call_soon_threadsafe(loop.call_later, delay_s, previous, sig, None)
            else:
                previous(sig, frame)

        signal.signal(signum, handler)
        installed = True
    return installed
