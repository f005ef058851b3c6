"""The Celery worker entry point: ``celery -A gateway.workers.jobs worker -Q prism.jobs`` (``make
worker``). Settings come from the environment (``GATEWAY_*``, as for the gateway): Celery's
``-A`` loads this module, so the app is built here; building it connects to nothing.

Each worker child opens one :class:`WorkerRuntime` (event loop, engine, checkpointer, models, and
Prism's request path in-process — ``gateway.workers.completions.open_completions`` — through which the
document pipelines make their model calls as each job's owner) on its first task and runs every
job of its life on it; ``worker_process_shutdown`` closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import structlog
from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_process_shutdown, worker_ready

from gateway.config.routing import load_config
from gateway.config.settings import Settings, get_settings
from gateway.db.engine import create_engine
from gateway.db.repositories import jobs
from gateway.jobs.celery_app import TASK, create_celery, declare_queues
from gateway.jobs.executor import JobBusy, JobExecutor
from gateway.jobs.runtime import open_executor
from gateway.observability.logging import configure_logging
from gateway.providers.http import UpstreamClients
from gateway.providers.registry import build_targets
from gateway.workers.completions import open_completions

log = structlog.get_logger("gateway.jobs")
settings = get_settings()
app = create_celery(settings)


class WorkerRuntime:
    """One per worker process: an event loop that runs the jobs, and what they need."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()
        self.executor: JobExecutor = self.loop.run_until_complete(self._open(settings))

    async def _open(self, settings: Settings) -> JobExecutor:
        engine = create_engine(settings)
        self._stack.push_async_callback(engine.dispose)
        self.engine = engine
        clients = UpstreamClients()
        self._stack.push_async_callback(clients.aclose)
        targets = build_targets(load_config(settings.config), clients=clients, env=os.environ)
        completions = await self._stack.enter_async_context(open_completions(settings))
        self._usage = getattr(completions.s, "usage", None)
        return await self._stack.enter_async_context(
            open_executor(settings, engine=engine, targets=targets, completions=completions)
        )

    def run(self, job_id: str) -> str:
        try:
            return self.loop.run_until_complete(self.executor.run(job_id))
        finally:
            if self.executor.webhooks is not None:
                self.loop.run_until_complete(self.executor.webhooks.flush())
            self._flush_usage()

    def _flush_usage(self) -> None:
        """The loop only runs while a job does: write the usage records of the job's model calls to
        the database now, not at the next job (they are on disk already; a failed write stays there
        for this worker's next flush or another worker's replay)."""
        flush = getattr(self._usage, "flush", None)
        if flush is None:
            return
        try:
            self.loop.run_until_complete(flush())
        except Exception as exc:  # the records stay in the segment file
            log.warning("usage_flush_deferred", error=type(exc).__name__)

    def fail(self, job_id: str, error: dict[str, Any]) -> None:
        async def write() -> None:
            async with self.engine.begin() as conn:
                await jobs.fail_unclaimed(conn, job_id=job_id, error=error, owner=self.executor.worker_id)

        self.loop.run_until_complete(write())

    def close(self) -> None:
        self.loop.run_until_complete(self._stack.aclose())
        self.loop.close()


_runtime: list[WorkerRuntime] = []


def runtime() -> WorkerRuntime:
    if not _runtime:
        configure_logging(level=settings.log_level, fmt=settings.log_format)
        _runtime.append(WorkerRuntime(settings))
    return _runtime[0]


@worker_ready.connect
def _declare(**_: Any) -> None:
    declare_queues(app)


@worker_process_shutdown.connect
def _close(**_: Any) -> None:
    if _runtime:
        _runtime.pop().close()


@app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_job(self: Task, job_id: str) -> str:
    try:
        return runtime().run(job_id)
    except JobBusy as busy:
        raise self.retry(countdown=busy.retry_after) from None
    except Exception as exc:
        retries = self.request.retries
        if retries >= settings.jobs_max_attempts:
            log.error("job_dead_lettered", job_id=job_id, error=type(exc).__name__)
            with contextlib.suppress(Exception):
                runtime().fail(
                    job_id,
                    {"message": f"the job's task failed: {type(exc).__name__}", "type": "worker_error"},
                )
            raise Reject(str(exc), requeue=False) from exc
        log.warning("job_retry", job_id=job_id, error=type(exc).__name__, retries=retries)
        raise self.retry(countdown=min(60.0, 2.0 ** (retries + 1))) from exc
