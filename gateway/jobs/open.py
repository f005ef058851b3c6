"""The gateway's jobs: the service behind ``/v1/jobs`` and where its jobs run — Celery when
``GATEWAY_JOBS_BROKER_URL`` is set, else the in-process worker (the embedded default)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config.settings import Settings
from gateway.jobs.registry import job_types
from gateway.jobs.runtime import LiveTargets, open_executor
from gateway.jobs.service import Dispatcher, JobService
from gateway.pipelines.llm import Completions
from gateway.providers.registry import Target


async def open_jobs(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    *,
    engine: AsyncEngine,
    targets: Callable[[], Mapping[str, Target]],
    completions: Completions,
) -> JobService:
    """``completions`` is the gateway's own request path: the in-process worker's document
    pipelines make their model calls through it as each job's owner."""
    dispatcher: Dispatcher
    if settings.jobs_broker_url:
        from gateway.jobs.celery_app import CeleryDispatcher, create_celery

        dispatcher = CeleryDispatcher(create_celery(settings))
    else:
        from gateway.jobs.inprocess import InProcessJobs

        executor = await stack.enter_async_context(
            open_executor(settings, engine=engine, targets=LiveTargets(targets), completions=completions)
        )
        worker = InProcessJobs(
            executor=executor, engine=engine, concurrency=settings.jobs_inprocess_concurrency
        )
        worker.start()
        stack.push_async_callback(worker.aclose)
        dispatcher = worker
    settings.jobs_storage_dir.mkdir(parents=True, exist_ok=True)
    return JobService(engine=engine, settings=settings, types=job_types(settings), dispatcher=dispatcher)
