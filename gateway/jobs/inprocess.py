"""Jobs without a broker (the embedded default, ``make run``): the gateway runs them itself in a
``jobs_inprocess`` background worker, off the request path (OCR in a thread), at most
``GATEWAY_JOBS_INPROCESS_CONCURRENCY`` at a time. The queue is the ``jobs`` table: queued jobs and
jobs whose lease expired (the process died) are claimed oldest first, so a restarted gateway
continues what the previous one left, from the last checkpoint."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.background import BackgroundWorker
from gateway.db.repositories import jobs
from gateway.jobs.executor import JobBusy, JobExecutor

log = structlog.get_logger("gateway.jobs")


class InProcessJobs:
    def __init__(
        self, *, executor: JobExecutor, engine: AsyncEngine, concurrency: int, poll_s: float = 2.0
    ) -> None:
        self._executor = executor
        self._engine = engine
        self._concurrency = concurrency
        self._running: dict[str, asyncio.Task[None]] = {}
        self._worker = BackgroundWorker("jobs_inprocess", self._round, interval_s=poll_s, first=self._round)

    def start(self) -> None:
        if self._concurrency > 0:
            self._worker.start()

    async def enqueue(self, job_id: str) -> None:
        self._worker.wake()

    async def _round(self) -> bool:
        free = self._concurrency - len(self._running)
        if free <= 0:
            return True
        async with self._engine.connect() as conn:
            candidates = await jobs.claimable(conn, limit=free + len(self._running))
        for job_id in candidates:
            if job_id in self._running or len(self._running) >= self._concurrency:
                continue
            task = asyncio.get_running_loop().create_task(self._run(job_id), name=f"job-{job_id}")
            self._running[job_id] = task
        return True

    async def _run(self, job_id: str) -> None:
        try:
            await self._executor.run(job_id)
        except JobBusy:
            pass  # another process holds it
        except Exception as exc:
            log.warning("job_run_failed", job_id=job_id, error=type(exc).__name__)
        finally:
            self._running.pop(job_id, None)
            self._worker.wake()

    async def aclose(self) -> None:
        """Stop claiming; stop the jobs under way (their leases expire and they are resumed later)."""
        await self._worker.aclose()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
