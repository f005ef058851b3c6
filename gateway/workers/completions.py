"""Prism's request path in a process that is not serving HTTP (a durable or queue worker): the
application's own lifespan (config, routing, guards, quotas, the usage recorder, the cache) opened
in-process, its :class:`CompletionService` handed to the pipelines' :class:`PipelineLLM`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gateway.config.settings import Settings
from gateway.pipelines.llm import PipelineLLM
from gateway.services.completion import CompletionService


@contextlib.asynccontextmanager
async def open_completions(settings: Settings) -> AsyncIterator[CompletionService]:
    from gateway.lifespan import lifespan
    from gateway.main import create_app

    app = create_app(settings)
    async with lifespan(app) as state:
        yield state["app"].completions


@contextlib.asynccontextmanager
async def open_pipeline_llm(settings: Settings, *, model: str) -> AsyncIterator[PipelineLLM]:
    """The LLM of the pipelines: ``model`` (the operator's choice; a job's ``options.model`` may
    name another) asked through the in-process completion service."""
    async with open_completions(settings) as completions:
        yield PipelineLLM(completions, model=model)
