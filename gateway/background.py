"""One shape for background work: :class:`BackgroundWorker`.

A worker runs ``step`` in rounds: the first ``interval_s`` after start (or at once when ``first``
is given, which runs before the loop), then one round per interval, early when :meth:`wake` is
called. A round that raises, or returns ``False`` (the owner handled a failure, e.g. an outage it
keeps state about), counts as failed; after ``n`` failures in a row the next round waits
``max(interval, backoff.delay(n))``. Owners that keep their own retry schedule (the usage ledger)
pass ``interval_s`` as a function and ``backoff=None``.

Stopping is a drain, never a cut: :meth:`stop` lets the round under way finish (bounded by
``stop_timeout_s``; a round that overruns is cancelled), :meth:`aclose` then runs ``drain`` once
(the owner's final flush) with its exceptions logged, not raised.

Every worker reports ``prism_worker_runs_total``, ``prism_worker_failures_total`` and
``prism_worker_last_success_timestamp_seconds`` with a ``worker`` label from :data:`WorkerName`
(a closed set), and logs with ``worker=<name>``. Per-item tasks (a cache write behind a response,
a shadow call, a judge call) are not workers: their owners track and await them at close.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, get_args

import structlog

from gateway.observability.metrics import WORKER_FAILURES, WORKER_LAST_SUCCESS, WORKER_RUNS

log = structlog.get_logger("prism.worker")

WorkerName = Literal[
    "usage_recorder",
    "shadow_results",
    "circuit_sync",
    "api_key_last_used",
    "quota_settle",
    "config_heartbeat",
    "config_listen",
    "durable_heartbeat",
    "durable_recovery",
    "mcp_client",
    "tool_audit",
    "jobs_inprocess",
    "eval_runs",
    "canary_sync",
]
WORKER_NAMES: tuple[WorkerName, ...] = get_args(WorkerName)

Step = Callable[[], Awaitable[bool | None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential: ``base_s`` after the first failure in a row, doubling, at most ``max_s``."""

    base_s: float = 0.1
    max_s: float = 30.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.base_s * 2.0 ** min(failures - 1, 32), self.max_s)


class BackgroundWorker:
    def __init__(
        self,
        name: WorkerName,
        step: Step,
        *,
        interval_s: float | Callable[[], float] | None,
        backoff: Backoff | None = Backoff(),
        first: Step | None = None,
        drain: Callable[[], Awaitable[object]] | None = None,
        stop_timeout_s: float | None = 5.0,
    ) -> None:
        """``interval_s=None``: rounds run only when woken. ``stop_timeout_s=None``: :meth:`stop`
        waits for the round under way however long it takes; ``0`` cancels it at once."""
        self.name = name
        self._step = step
        self._interval = interval_s
        self._backoff = backoff
        self._first = first
        self._drain = drain
        self.stop_timeout_s = stop_timeout_s
        self.failures = 0
        """Failed rounds in a row (0 after a success)."""
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._log = log.bind(worker=name)
        WORKER_RUNS.labels(worker=name)  # the series exist at 0 from the start
        WORKER_FAILURES.labels(worker=name)
        WORKER_LAST_SUCCESS.labels(worker=name)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop (idempotent; needs a running event loop)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"worker-{self.name}")

    def wake(self) -> None:
        """Run the next round now (or as soon as the round under way is done)."""
        self._wake.set()

    async def stop(self, *, timeout_s: float | None = None) -> None:
        """End the loop after the round under way (at most ``timeout_s``, default ``stop_timeout_s``;
        then that round is cancelled). Idempotent; the worker can be started again."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        if task.done():  # cancelled from outside (loop shutdown) or ended by a BaseException
            if not task.cancelled() and task.exception() is not None:
                self._log.warning("worker_ended", error=type(task.exception()).__name__)
            return
        limit = self.stop_timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if limit:
                self._log.warning("worker_round_cancelled", timeout_s=limit)

    async def aclose(self, *, timeout_s: float | None = None) -> None:
        """:meth:`stop`, then ``drain`` once (a failure is logged: closing goes on)."""
        await self.stop(timeout_s=timeout_s)
        if self._drain is not None:
            try:
                await self._drain()
            except Exception as exc:
                self._log.warning("worker_drain_failed", error=type(exc).__name__, exc_info=True)

    def _delay(self) -> float | None:
        interval = self._interval() if callable(self._interval) else self._interval
        if self._backoff is None or self.failures == 0:
            return interval
        return max(interval or 0.0, self._backoff.delay(self.failures))

    async def _run(self) -> None:
        if self._first is not None:
            await self._round(self._first)
        while not self._stopping:
            delay = self._delay()
            if delay is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            await self._round(self._step)

    async def _round(self, step: Step) -> None:
        WORKER_RUNS.labels(worker=self.name).inc()
        try:
            ok = await step() is not False
        except Exception as exc:
            ok = False
            self._log.warning(
                "worker_round_failed", error=type(exc).__name__, failures=self.failures + 1, exc_info=True
            )
        if ok:
            self.failures = 0
            WORKER_LAST_SUCCESS.labels(worker=self.name).set(time.time())
        else:
            self.failures += 1
            WORKER_FAILURES.labels(worker=self.name).inc()
