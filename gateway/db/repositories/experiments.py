"""Experiments: shadow results (batched inserts), feedback, runs, and the rows behind the reports.

Every report query takes ``since`` (the start of the experiment's current run, or None for all
rows), so one run's report never mixes in an earlier run's traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.db.models import ExperimentRun, Feedback, ShadowJudgement, ShadowResult, UsageLog


async def insert_shadow_results(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(ShadowResult), list(rows))


async def insert_shadow_judgements(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(ShadowJudgement), list(rows))


async def find_usage(session: AsyncSession, request_id: str) -> UsageLog | None:
    return await session.get(UsageLog, request_id)


async def _get_feedback(session: AsyncSession, request_id: str, user_id: str | None) -> Feedback | None:
    owner = Feedback.user_id.is_(None) if user_id is None else Feedback.user_id == user_id
    result = await session.execute(select(Feedback).where(Feedback.request_id == request_id, owner))
    return result.scalars().first()


async def upsert_feedback(
    session: AsyncSession, *, request_id: str, user_id: str | None, **values: Any
) -> tuple[Feedback, bool]:
    """One rating per (request, user): the first call inserts, later ones update it in place.
    Returns the row and whether it was created. A concurrent insert of the same pair (the unique
    index ``uq_feedback_request_user``) turns into an update of the row that won."""
    row = await _get_feedback(session, request_id, user_id)
    if row is None:
        try:
            async with session.begin_nested():
                row = Feedback(request_id=request_id, user_id=user_id, **values)
                session.add(row)
                await session.flush()
            return row, True
        except IntegrityError:
            row = await _get_feedback(session, request_id, user_id)
            if row is None:
                raise
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = datetime.now(UTC)
    await session.flush()
    return row, False


async def create_run(
    session: AsyncSession, *, experiment: str, started_by: str | None, reason: str | None
) -> ExperimentRun:
    run = ExperimentRun(
        experiment=experiment, started_at=datetime.now(UTC), started_by=started_by, reason=reason
    )
    session.add(run)
    await session.flush()
    return run


async def list_runs(session: AsyncSession, experiment: str, *, limit: int = 100) -> list[ExperimentRun]:
    """The experiment's runs, newest first."""
    result = await session.execute(
        select(ExperimentRun)
        .where(ExperimentRun.experiment == experiment)
        .order_by(ExperimentRun.started_at.desc(), ExperimentRun.id.desc())
        .limit(limit)
    )
    return list(result.scalars().all())


async def get_run(session: AsyncSession, experiment: str, run_id: int) -> ExperimentRun | None:
    run = await session.get(ExperimentRun, run_id)
    return run if run is not None and run.experiment == experiment else None


async def run_end(session: AsyncSession, run: ExperimentRun) -> datetime | None:
    """When the run ended: the start of the next run of the same experiment (None: still running)."""
    result = await session.execute(
        select(ExperimentRun.started_at)
        .where(
            ExperimentRun.experiment == run.experiment,
            ExperimentRun.started_at > run.started_at,
        )
        .order_by(ExperimentRun.started_at)
        .limit(1)
    )
    return result.scalar_one_or_none()


async def experiment_rows(
    session: AsyncSession,
    experiment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200_000,
) -> list[Any]:
    """(arm, status, latency_ms, ttft_ms, prompt, completion, cost, cache_hit, attempts,
    fallback_used), newest first, within [since, until)."""
    query = select(
        UsageLog.arm,
        UsageLog.status,
        UsageLog.latency_ms,
        UsageLog.ttft_ms,
        UsageLog.prompt_tokens,
        UsageLog.completion_tokens,
        UsageLog.cost_usd,
        UsageLog.cache_hit,
        UsageLog.attempts,
        UsageLog.fallback_used,
    ).where(UsageLog.experiment == experiment)
    if since is not None:
        query = query.where(UsageLog.created_at >= since)
    if until is not None:
        query = query.where(UsageLog.created_at < until)
    result = await session.execute(query.order_by(UsageLog.created_at.desc()).limit(limit))
    return list(result.all())


async def feedback_rows(
    session: AsyncSession, experiment: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[Any]:
    """(arm, score, thumb) of the ratings of requests made within [since, until)."""
    query = select(Feedback.arm, Feedback.score, Feedback.thumb).where(Feedback.experiment == experiment)
    if since is not None or until is not None:
        query = query.join(UsageLog, UsageLog.request_id == Feedback.request_id)
        if since is not None:
            query = query.where(UsageLog.created_at >= since)
        if until is not None:
            query = query.where(UsageLog.created_at < until)
    result = await session.execute(query)
    return list(result.all())


async def shadow_rows(
    session: AsyncSession, alias: str, *, since: datetime | None = None, limit: int = 100_000
) -> list[ShadowResult]:
    query = select(ShadowResult).where(ShadowResult.alias == alias)
    if since is not None:
        query = query.where(ShadowResult.created_at >= since)
    result = await session.execute(query.order_by(ShadowResult.created_at.desc()).limit(limit))
    return list(result.scalars().all())


async def judgement_rows(
    session: AsyncSession, alias: str, *, since: datetime | None = None, limit: int = 100_000
) -> list[ShadowJudgement]:
    query = select(ShadowJudgement).where(ShadowJudgement.alias == alias)
    if since is not None:
        query = query.where(ShadowJudgement.created_at >= since)
    result = await session.execute(query.order_by(ShadowJudgement.created_at.desc()).limit(limit))
    return list(result.scalars().all())
