"""Experiments: shadow results (batched inserts), feedback, and the rows behind the reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.db.models import Feedback, ShadowJudgement, ShadowResult, UsageLog


async def insert_shadow_results(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(ShadowResult), list(rows))


async def insert_shadow_judgements(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(ShadowJudgement), list(rows))


async def find_usage(session: AsyncSession, request_id: str) -> UsageLog | None:
    return await session.get(UsageLog, request_id)


async def add_feedback(session: AsyncSession, **values: Any) -> Feedback:
    row = Feedback(**values)
    session.add(row)
    await session.flush()
    return row


async def experiment_rows(session: AsyncSession, experiment: str, *, limit: int = 200_000) -> list[Any]:
    """(arm, status, latency_ms, ttft_ms, prompt, completion, cost, cache_hit), newest first."""
    result = await session.execute(
        select(
            UsageLog.arm,
            UsageLog.status,
            UsageLog.latency_ms,
            UsageLog.ttft_ms,
            UsageLog.prompt_tokens,
            UsageLog.completion_tokens,
            UsageLog.cost_usd,
            UsageLog.cache_hit,
        )
        .where(UsageLog.experiment == experiment)
        .order_by(UsageLog.created_at.desc())
        .limit(limit)
    )
    return list(result.all())


async def feedback_rows(session: AsyncSession, experiment: str) -> list[Any]:
    result = await session.execute(
        select(Feedback.arm, Feedback.score, Feedback.thumb).where(Feedback.experiment == experiment)
    )
    return list(result.all())


async def shadow_rows(session: AsyncSession, alias: str, *, limit: int = 100_000) -> list[ShadowResult]:
    result = await session.execute(
        select(ShadowResult)
        .where(ShadowResult.alias == alias)
        .order_by(ShadowResult.created_at.desc())
        .limit(limit)
    )
    return list(result.scalars().all())


async def judgement_rows(session: AsyncSession, alias: str, *, limit: int = 100_000) -> list[ShadowJudgement]:
    result = await session.execute(
        select(ShadowJudgement)
        .where(ShadowJudgement.alias == alias)
        .order_by(ShadowJudgement.created_at.desc())
        .limit(limit)
    )
    return list(result.scalars().all())
