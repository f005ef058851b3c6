"""What runs jobs in a process: the executor with its engine, checkpointer, models, completion
service (the document pipelines' model calls) and webhooks, opened once (the gateway's in-process
worker, or a Celery worker child) and closed on exit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.agent.durable.checkpointer import open_checkpointers
from gateway.config.durable import DurableConfig
from gateway.config.settings import Settings
from gateway.jobs.executor import JobExecutor
from gateway.jobs.registry import PipelineContext, job_types
from gateway.jobs.webhooks import WebhookSender
from gateway.pipelines.llm import Completions
from gateway.providers.registry import Target


class LiveTargets(Mapping[str, Target]):
    """The configured models as of now (the gateway's reloadable routing config)."""

    def __init__(self, current: Callable[[], Mapping[str, Target]]) -> None:
        self._current = current

    def __getitem__(self, name: str) -> Target:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


@contextlib.asynccontextmanager
async def open_executor(
    settings: Settings,
    *,
    engine: AsyncEngine,
    targets: Mapping[str, Target],
    completions: Completions | None = None,
) -> AsyncIterator[JobExecutor]:
    config = DurableConfig.from_settings(settings)
    secret = settings.jobs_webhook_secret.get_secret_value() if settings.jobs_webhook_secret else None
    webhooks = WebhookSender(secret=secret)
    try:
        async with open_checkpointers(config) as savers:
            yield JobExecutor(
                engine=engine,
                checkpointer=savers[0],
                types=job_types(settings),
                context=PipelineContext(
                    targets=targets, model=settings.jobs_model, settings=settings, completions=completions
                ),
                worker_id=config.worker_id or f"{os.uname().nodename}:{os.getpid()}",
                webhooks=webhooks,
            )
    finally:
        await webhooks.aclose()
