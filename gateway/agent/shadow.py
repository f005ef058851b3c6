"""Mirrors requests to shadow models in the background, never delaying or failing the primary.

Bounded: at most ``max_concurrency`` shadow calls run and ``max_queue`` wait;
anything beyond is dropped and counted. Each call has its own deadline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from gateway.experiments.shadow import ShadowResults
from gateway.observability import metrics

log = structlog.get_logger("prism.shadow")

ShadowJob = Callable[[], Coroutine[Any, Any, None]]


class ShadowDispatcher:
    def __init__(
        self,
        *,
        max_concurrency: int = 8,
        max_queue: int = 256,
        deadline_s: float = 30.0,
        results: ShadowResults | None = None,
    ) -> None:
        self.results = results or ShadowResults()
        """Pairs, spend caps and the ``shadow_results`` writer (issue #5)."""
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_pending = max_concurrency + max_queue
        self._deadline_s = deadline_s
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    @property
    def deadline_s(self) -> float:
        return self._deadline_s

    def has_room(self) -> bool:
        return len(self._tasks) < self._max_pending

    def submit(self, *, model: str, job: ShadowJob, pair_id: str | None = None) -> str | None:
        """Schedule a shadow call; returns its pair id, or None when it was dropped."""
        if len(self._tasks) >= self._max_pending:
            metrics.SHADOW_DROPPED.labels(model=model, reason="queue_full").inc()
            return None
        pair_id = pair_id or uuid.uuid4().hex
        task = asyncio.get_running_loop().create_task(self._run(model, pair_id, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return pair_id

    async def _run(self, model: str, pair_id: str, job: ShadowJob) -> None:
        async with self._semaphore:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._deadline_s):
                    await job()
            except TimeoutError:
                metrics.SHADOW_CALLS.labels(model=model, outcome="timeout").inc()
                log.info("shadow_call", model=model, pair_id=pair_id, outcome="timeout")
            except Exception as exc:
                metrics.SHADOW_CALLS.labels(model=model, outcome="error").inc()
                log.info(
                    "shadow_call", model=model, pair_id=pair_id, outcome="error", error=type(exc).__name__
                )
            else:
                metrics.SHADOW_CALLS.labels(model=model, outcome="ok").inc()
                log.info(
                    "shadow_call",
                    model=model,
                    pair_id=pair_id,
                    outcome="ok",
                    latency_ms=round((time.perf_counter() - started) * 1000, 2),
                )

    async def aclose(self, *, timeout_s: float = 5.0) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
