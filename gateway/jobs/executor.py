"""Runs one job to its end, exactly once whatever happens to the workers.

:meth:`JobExecutor.run` claims the job's lease (``db/repositories/jobs.py``), runs its graph on
LangGraph's runtime with the durable checkpointer (``thread_id = job-<id>``, ``durability="sync"``:
each step's checkpoint is written before the next starts), renews the lease while it runs (storing
progress), and writes the outcome and the job's usage row in one transaction that only the holder
of the current lease token can make. A worker SIGKILLed mid-job leaves its lease to expire; the
queue redelivers the message, and the worker that claims the job next continues it from the last
checkpoint. A job cancelled through the API is noticed at the next renewal and stopped.

The Celery task (``gateway/jobs/celery_app.py``) and the in-process worker (``inprocess.py``) both
call :meth:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.agent.durable.definitions import DurableGraph, RunInfo, jsonable
from gateway.db.repositories import jobs
from gateway.db.repositories.usage import insert_ignore_duplicates
from gateway.jobs.graphs import Progress, job_graph, job_steps
from gateway.jobs.registry import OWNER_KEY, JobType, PipelineContext
from gateway.jobs.uploads import discard
from gateway.jobs.webhooks import WebhookSender
from gateway.observability import tracing
from gateway.observability.metrics import JOBS_FINISHED, JOBS_RUNNING
from gateway.pipelines import budget as job_budget
from gateway.usage.record import UsageRecord, UsageStatus

log = structlog.get_logger("gateway.jobs")

Outcome = Literal["succeeded", "failed", "cancelled", "skipped", "lease_lost"]


class JobBusy(Exception):
    """Another worker holds this job's lease; try again after ``retry_after`` seconds."""

    def __init__(self, job_id: str, retry_after: float) -> None:
        super().__init__(f"job {job_id} is held by another worker")
        self.retry_after = retry_after


class JobExecutor:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        checkpointer: BaseCheckpointSaver[Any],
        types: Mapping[str, JobType],
        context: PipelineContext,
        worker_id: str,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self._engine = engine
        self._checkpointer = checkpointer
        self._types = types
        self._context = context
        self._settings = context.settings
        self.worker_id = worker_id
        self.webhooks = webhooks
        self._graphs: dict[str, tuple[DurableGraph, Any]] = {}

    def _graph(self, job_type: str) -> tuple[DurableGraph, Any]:
        if job_type not in self._graphs:
            spec = self._types[job_type]
            graph = job_graph(spec, spec.load()(self._context), dpi=self._settings.jobs_ocr_dpi)
            self._graphs[job_type] = (
                graph,
                graph.builder.compile(checkpointer=self._checkpointer, name=graph.name),
            )
        return self._graphs[job_type]

    async def run(self, job_id: str) -> Outcome:
        lease_s = self._settings.jobs_lease_s
        async with self._engine.begin() as conn:
            lease = await jobs.claim(conn, job_id=job_id, owner=self.worker_id, lease_s=lease_s)
            row = await jobs.get(conn, job_id)
        if lease is None:
            if row is None or row.status in jobs.TERMINAL:
                return "skipped"
            expires = row.lease_expires_at or datetime.now(UTC)
            raise JobBusy(job_id, max(0.5, (expires - datetime.now(UTC)).total_seconds() + 0.5))
        bound = log.bind(job_id=job_id, job_type=row.type, job_worker=self.worker_id, attempt=lease.attempts)
        reason = None
        if lease.attempts > self._settings.jobs_max_attempts:
            reason = "too many attempts"
        elif row.type not in self._types:
            reason = f"no pipeline for type {row.type!r}"
        else:
            try:
                self._graph(row.type)
            except Exception as exc:  # a configuration error: permanent, fail the job now
                reason = f"the {row.type!r} pipeline cannot be built: {type(exc).__name__}: {exc}"[:2000]
        if reason is not None:
            return await self._finish(
                row, lease, "failed", error={"message": reason, "type": "job_error"}, bound=bound
            )
        spec = self._types[row.type]
        progress = Progress(steps=job_steps(spec))
        progress.step = progress.steps[0]
        JOBS_RUNNING.inc()
        bound.info("job_started")
        try:
            with tracing.tracer().start_as_current_span(
                f"job {row.type}",
                attributes={
                    "prism.job.id": job_id,
                    "prism.job.type": row.type,
                    "prism.job.attempt": lease.attempts,
                },
            ):
                return await self._execute(row, lease, spec, progress, bound)
        finally:
            JOBS_RUNNING.dec()

    async def _execute(
        self, row: Any, lease: jobs.JobLease, spec: JobType, progress: Progress, bound: Any
    ) -> Outcome:
        graph, compiled = self._graph(row.type)
        config: RunnableConfig = {"configurable": {"thread_id": f"job-{row.id}"}, "recursion_limit": 100}
        snapshot = await compiled.aget_state(config)
        payload = None
        if snapshot.created_at is None:
            options = dict(row.options or {})
            owner = options.pop(OWNER_KEY, None)
            payload = graph.prepare(
                {
                    "path": row.file_path,
                    "content_type": row.content_type,
                    "options": options,
                    "pages": row.pages,
                    "principal": owner,
                }
            )
        else:
            bound.info("job_resumed", from_steps=list(snapshot.next))
        context = graph.context(RunInfo(run_id=row.id, graph=graph.name, claims=lease.attempts))
        progress.carried_tokens = int(row.tokens or 0)  # an earlier attempt's, kept by the checkpoint
        progress.budget = await self._budget(row)
        budget_token = job_budget.CURRENT.set(progress.budget)
        task = asyncio.current_task()
        assert task is not None
        lost: list[str] = []
        heartbeat = asyncio.create_task(self._heartbeat(lease, progress, task, lost))
        try:
            async with asyncio.timeout(self._settings.jobs_time_limit_s):
                async for namespace, mode, chunk in compiled.astream(
                    payload,
                    config,
                    context=context,
                    stream_mode=["updates", "custom"],
                    subgraphs=True,
                    durability="sync",
                ):
                    progress.observe(namespace, mode, chunk)
            final = await compiled.aget_state(config)
        except asyncio.CancelledError:
            if lost:
                bound.warning("job_stopped", reason=lost[0])
                return "cancelled" if lost[0] == "cancelled" else "lease_lost"
            raise
        except TimeoutError:
            return await self._finish(
                row,
                lease,
                "failed",
                error={
                    "message": f"the job ran past its time limit of {self._settings.jobs_time_limit_s:g}s",
                    "type": "timeout",
                },
                progress=progress,
                bound=bound,
            )
        except Exception as exc:
            if _database_error(exc):
                raise  # the queue retries with backoff; the next claim resumes from the checkpoint
            bound.warning("job_step_failed", error=type(exc).__name__)
            quota = _quota_error(exc)
            error = {
                "message": f"{type(exc).__name__}: {exc}"[:2000] if quota is None else str(quota),
                "type": "pipeline_error" if quota is None else "token_quota_exceeded",
                "step": progress.step,
            }
            return await self._finish(row, lease, "failed", error=error, progress=progress, bound=bound)
        finally:
            job_budget.CURRENT.reset(budget_token)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        values = final.values
        output = graph.output(values)
        result = jsonable(output.get("last") if isinstance(output, dict) and "last" in output else output)
        outcome = await self._finish(row, lease, "succeeded", result=result, progress=progress, bound=bound)
        if outcome == "succeeded":
            with contextlib.suppress(Exception):  # the result is recorded; leftovers cost only space
                await self._checkpointer.adelete_thread(f"job-{row.id}")
        return outcome

    async def _budget(self, row: Any) -> job_budget.TokenBudget:
        """What is left today of the key's ``GATEWAY_JOBS_TOKENS_PER_DAY`` for this run (the day's
        tokens of the key's jobs, this one's earlier attempts included, subtracted)."""
        limit = self._settings.jobs_tokens_per_day
        if limit is None:
            return job_budget.TokenBudget(None)
        since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self._engine.connect() as conn:
            _, used = await jobs.usage_since(
                conn, api_key_id=row.api_key_id, user_id=row.user_id, since=since
            )
        return job_budget.TokenBudget(max(0, limit - used))

    async def _heartbeat(
        self, lease: jobs.JobLease, progress: Progress, task: asyncio.Task[Any], lost: list[str]
    ) -> None:
        interval = self._settings.jobs_lease_s / 3
        while True:
            await asyncio.sleep(min(interval, 1.0) if progress.updated else interval)
            try:
                async with self._engine.begin() as conn:
                    held = await jobs.renew(
                        conn,
                        lease=lease,
                        lease_s=self._settings.jobs_lease_s,
                        progress=progress.as_dict(),
                        tokens=progress.tokens,
                    )
                    status = None if held else (await jobs.get(conn, lease.job_id)).status
            except Exception as exc:  # the database is away: keep running, the lease may survive it
                log.warning("job_heartbeat_failed", job_id=lease.job_id, error=type(exc).__name__)
                continue
            if not held:
                lost.append("cancelled" if status == "cancelled" else "lease_lost")
                task.cancel()
                return

    async def _finish(
        self,
        row: Any,
        lease: jobs.JobLease,
        status: Literal["succeeded", "failed"],
        *,
        result: Any = None,
        error: Any = None,
        progress: Progress | None = None,
        bound: Any,
    ) -> Outcome:
        progress_dict = progress.as_dict() if progress is not None else None
        if progress_dict is not None and status == "succeeded":
            progress_dict.update(percent=100.0, step=None, steps_done=progress_dict["steps"])
        tokens = progress.tokens if progress is not None else 0
        started = row.started_at or row.created_at
        audio = result.get("usage") if isinstance(result, dict) and row.type == "transcription" else None
        record = UsageRecord(
            request_id=f"job-{row.id}",
            user_id=row.user_id,
            api_key_id=row.api_key_id,
            tier=row.tier,
            route=f"jobs.{row.type}"[:32],
            model_served=self._context.model if tokens else None,
            status=UsageStatus.OK if status == "succeeded" else UsageStatus.ERROR,
            http_status=200 if status == "succeeded" else 500,
            error_type=(error or {}).get("type") if status == "failed" else None,
            prompt_tokens=progress.prompt_tokens if progress else 0,
            completion_tokens=progress.completion_tokens if progress else 0,
            cost_usd=float(audio.get("cost_usd") or 0.0) if isinstance(audio, dict) else 0.0,
            latency_ms=max(0.0, (datetime.now(UTC) - started).total_seconds() * 1000),
            attempts=lease.attempts,
        )
        async with self._engine.begin() as conn:
            written = await jobs.finish(
                conn,
                lease=lease,
                status=status,
                result=result,
                error=error,
                progress=progress_dict,
                tokens=tokens,
            )
            if written:
                await insert_ignore_duplicates(conn, [record.as_row()])
        if not written:
            bound.warning("job_outcome_not_written")
            return "lease_lost"
        JOBS_FINISHED.labels(type=row.type, status=status).inc()
        bound.info("job_finished", status=status, tokens=tokens, attempt=lease.attempts)
        discard(_path(row.file_path))
        if self.webhooks is not None and row.webhook_url:
            self.webhooks.deliver(
                row.webhook_url,
                {
                    "id": row.id,
                    "object": "job",
                    "type": row.type,
                    "status": status,
                    "error": error,
                    "finished_at": int(time.time()),
                },
            )
        return status


def _path(value: str | None) -> Any:
    from pathlib import Path

    return Path(value) if value else None


def _quota_error(exc: BaseException) -> BaseException | None:
    """The ``JobTokenQuotaExceeded`` behind a pipeline's failure, however LangGraph wrapped it."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, job_budget.JobTokenQuotaExceeded):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _database_error(exc: BaseException) -> bool:
    """The database went away (not a pipeline's own failure, which fails the job)."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError | psycopg.OperationalError | sqlite3.OperationalError)
