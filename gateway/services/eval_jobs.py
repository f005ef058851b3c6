"""Evaluation runs on the task queue: the ``evaluation`` job type (issue #24 with the jobs issue).

When a broker is configured (``GATEWAY_JOBS_BROKER_URL``), a new run is handed to the jobs queue:
:func:`dispatch` writes an ``evaluation`` job (owner: the run's owner) whose options name the run,
marks the run with the job's id — so the gateways' in-process evaluation worker leaves it alone —
and publishes it; a Celery worker (``make worker``) executes it with :func:`evaluation_pipeline`.
The pipeline's one step runs the run through the worker's own Prism request path
(``EvalRunner.run_for_job``), so the calls are the ones an in-process run makes (guards, routing,
quotas, usage records tagged ``traffic=evaluation``).

Resume: every result is committed on its own (``EvalRunner``). A worker SIGKILLed mid-run leaves
its job's lease to expire; RabbitMQ redelivers the message (``acks_late``), the next worker claims
the job (the job lease fences it: never two at once) and the step takes the run over at once and
skips the stored pairs, so at most the calls that were in flight are made again.

Without a broker nothing changes: the run stays on the in-process background worker
(``services/eval_runner.py``), off the request workers. A queue that refuses the message falls back
to that path too (the run's job mark is cleared), so a run is never stranded by a broker outage.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.agent.durable.definitions import DurableGraph
from gateway.agent.durable.pipeline import Step, StepContext, build_pipeline
from gateway.db.engine import create_engine, create_sessionmaker
from gateway.db.llmops import EvalRun
from gateway.db.repositories import jobs
from gateway.evals.assertions import load_custom
from gateway.jobs.registry import OWNER_KEY, PipelineContext
from gateway.jobs.service import JobService
from gateway.observability.metrics import JOBS_SUBMITTED
from gateway.pipelines.llm import principal_json
from gateway.providers.http import UpstreamClients
from gateway.security.principal import Principal
from gateway.services.completion import CompletionService
from gateway.services.embeddings import EmbeddingService
from gateway.services.eval_runner import EvalRunner

log = structlog.get_logger("prism.evals")

JOB_TYPE = "evaluation"


async def dispatch(
    service: JobService, engine: AsyncEngine, *, run_id: str, principal: Principal
) -> str | None:
    """Hand a committed, queued run to the jobs queue; its job id, or None when the queue refused it
    (the run then stays with the in-process worker)."""
    job_id = uuid.uuid4().hex
    async with engine.begin() as conn:
        await jobs.create(
            conn,
            {
                "id": job_id,
                "type": JOB_TYPE,
                "user_id": principal.user_id,
                "api_key_id": principal.api_key_id,
                "tier": principal.tier,
                "options": {"run_id": run_id, OWNER_KEY: principal_json(principal)},
            },
        )
        await conn.execute(
            update(EvalRun).where(EvalRun.id == run_id, EvalRun.status == "queued").values(job_id=job_id)
        )
    try:
        await service.dispatcher.enqueue(job_id)
    except Exception as exc:
        async with engine.begin() as conn:
            await jobs.fail_unclaimed(
                conn,
                job_id=job_id,
                error={"message": "the task queue is unavailable", "type": "queue_unavailable"},
            )
            await conn.execute(update(EvalRun).where(EvalRun.id == run_id).values(job_id=None))
        log.warning("eval_job_enqueue_failed", run_id=run_id, job_id=job_id, error=type(exc).__name__)
        return None
    JOBS_SUBMITTED.labels(type=JOB_TYPE).inc()
    log.info("eval_job_submitted", run_id=run_id, job_id=job_id)
    return job_id


def _runner(context: PipelineContext) -> EvalRunner:
    """An evaluation runner on this worker's request path (its own small engine for the run rows)."""
    completions = context.completions
    if not isinstance(completions, CompletionService):
        raise LookupError("no completion service in this process: evaluation calls cannot run")
    settings = context.settings
    engine = create_engine(settings)
    holder = completions.s.holder
    return EvalRunner(
        sessionmaker=create_sessionmaker(engine),
        completions=completions,
        holder=holder,
        embeddings=EmbeddingService(
            holder=holder,
            clients=UpstreamClients(),
            env=os.environ,
            usage=completions.s.usage,
            quotas=completions.s.quotas,
        ),
        custom=load_custom(settings.eval_assertions_module),
        max_concurrency=settings.eval_max_concurrency,
        lease_s=settings.eval_lease_s,
    )


def evaluation_pipeline(context: PipelineContext) -> DurableGraph:
    """``evaluation`` jobs: one step that executes (or resumes) the run the job's options name."""
    runner: list[EvalRunner] = []

    async def evaluate(value: dict[str, Any], step: StepContext) -> dict[str, Any]:
        run_id = (value.get("options") or {}).get("run_id")
        if not isinstance(run_id, str):
            raise ValueError("an evaluation job needs options.run_id")
        if not runner:
            runner.append(_runner(context))
        status = await runner[0].run_for_job(run_id, job_id=step.run.run_id)
        return {"run_id": run_id, "status": status}

    return build_pipeline(JOB_TYPE, [Step("evaluate", evaluate, retry=None)])
