"""Datasets and their versioned cases; evaluation runs and their results (issue #24)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.llmops import Dataset, DatasetCase, EvalResult, EvalRun
from gateway.db.models import Feedback, ShadowJudgement, ShadowResult, UsageLog


def _live(version: int) -> list[ColumnElement[bool]]:
    return [
        DatasetCase.version_added <= version,
        or_(DatasetCase.version_removed.is_(None), DatasetCase.version_removed > version),
    ]


class DatasetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, row: Dataset) -> Dataset:
        self.session.add(row)
        await self.session.flush()
        return row

    async def get_or_none(self, dataset_id: str, *, lock: bool = False) -> Dataset | None:
        query = select(Dataset).where(Dataset.id == dataset_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_by_name(self, name: str) -> Dataset | None:
        return (await self.session.execute(select(Dataset).where(Dataset.name == name))).scalar_one_or_none()

    async def list(self, *, owner_id: str | None, limit: int, offset: int) -> Sequence[Dataset]:
        query = select(Dataset).order_by(Dataset.created_at, Dataset.id).limit(limit).offset(offset)
        if owner_id is not None:
            query = query.where(Dataset.owner_id == owner_id)
        return (await self.session.execute(query)).scalars().all()

    async def delete(self, row: Dataset) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def cases(self, dataset_id: str, version: int) -> Sequence[DatasetCase]:
        query = (
            select(DatasetCase)
            .where(DatasetCase.dataset_id == dataset_id, *_live(version))
            .order_by(DatasetCase.position, DatasetCase.id)
        )
        return (await self.session.execute(query)).scalars().all()

    async def count(self, dataset_id: str, version: int) -> int:
        query = (
            select(func.count())
            .select_from(DatasetCase)
            .where(DatasetCase.dataset_id == dataset_id, *_live(version))
        )
        return int((await self.session.execute(query)).scalar_one())

    async def next_position(self, dataset_id: str) -> int:
        query = select(func.coalesce(func.max(DatasetCase.position), -1)).where(
            DatasetCase.dataset_id == dataset_id
        )
        return int((await self.session.execute(query)).scalar_one()) + 1

    async def add_cases(self, rows: Sequence[DatasetCase]) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def retire(self, dataset_id: str, *, version: int, case_id: str | None = None) -> int:
        """Retire live cases (one, or all) as of ``version``; the count retired."""
        query = update(DatasetCase).where(
            DatasetCase.dataset_id == dataset_id, DatasetCase.version_removed.is_(None)
        )
        if case_id is not None:
            query = query.where(DatasetCase.id == case_id)
        result = await self.session.execute(query.values(version_removed=version))
        return int(getattr(result, "rowcount", 0) or 0)

    async def case(self, dataset_id: str, case_id: str) -> DatasetCase | None:
        query = select(DatasetCase).where(
            DatasetCase.dataset_id == dataset_id,
            DatasetCase.id == case_id,
            DatasetCase.version_removed.is_(None),
        )
        return (await self.session.execute(query)).scalar_one_or_none()


class EvalRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, row: EvalRun) -> EvalRun:
        self.session.add(row)
        await self.session.flush()
        return row

    async def get_or_none(self, run_id: str) -> EvalRun | None:
        return await self.session.get(EvalRun, run_id)

    async def list(self, *, owner_id: str | None, limit: int, offset: int) -> Sequence[EvalRun]:
        query = select(EvalRun).order_by(EvalRun.created_at.desc(), EvalRun.id).limit(limit).offset(offset)
        if owner_id is not None:
            query = query.where(EvalRun.owner_id == owner_id)
        return (await self.session.execute(query)).scalars().all()

    async def claimable(self, now: datetime) -> str | None:
        """A run to work on: queued, or running under a lease that has expired (its replica died)."""
        query = (
            select(EvalRun.id)
            .where(
                EvalRun.job_id.is_(None),  # a run on the jobs queue is its job's (services/eval_jobs.py)
                or_(
                    EvalRun.status == "queued",
                    (EvalRun.status == "running") & (EvalRun.lease_until < now),
                ),
            )
            .order_by(EvalRun.created_at)
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def claim(self, run_id: str, *, now: datetime, lease_until: datetime) -> bool:
        """Take the run if it is still claimable (one statement: two replicas cannot both win)."""
        result = await self.session.execute(
            update(EvalRun)
            .where(
                EvalRun.id == run_id,
                EvalRun.job_id.is_(None),
                or_(EvalRun.status == "queued", (EvalRun.status == "running") & (EvalRun.lease_until < now)),
            )
            .values(
                status="running", lease_until=lease_until, started_at=func.coalesce(EvalRun.started_at, now)
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def results(self, run_id: str) -> Sequence[EvalResult]:
        query = (
            select(EvalResult)
            .where(EvalResult.run_id == run_id)
            .order_by(EvalResult.variant, EvalResult.case_id)
        )
        return (await self.session.execute(query)).scalars().all()

    async def add_result(self, row: EvalResult) -> None:
        self.session.add(row)
        await self.session.flush()


async def live_usage(session: AsyncSession, application: str) -> list[dict[str, object]]:
    """An application's product traffic (not evaluations) per prompt version, experiment arm and model,
    with the feedback its answers received."""
    votes = func.sum(case((Feedback.thumb == "up", 1), else_=0))
    rated = func.avg(case((Feedback.thumb.is_(None), Feedback.score), else_=None))
    query = (
        select(
            UsageLog.prompt_version_id,
            UsageLog.experiment,
            UsageLog.arm,
            UsageLog.model_served,
            UsageLog.app_arm,
            func.count(UsageLog.request_id),
            func.sum(case((UsageLog.status == "ok", 0), else_=1)),
            func.avg(UsageLog.latency_ms),
            func.sum(UsageLog.cost_usd),
            func.count(Feedback.id),
            votes,
            rated,
            func.count(case((Feedback.id.is_not(None) & Feedback.thumb.is_(None), 1), else_=None)),
        )
        .select_from(UsageLog)
        .outerjoin(Feedback, Feedback.request_id == UsageLog.request_id)
        .where(UsageLog.application == application, UsageLog.traffic.is_(None))
        .group_by(
            UsageLog.prompt_version_id,
            UsageLog.experiment,
            UsageLog.arm,
            UsageLog.model_served,
            UsageLog.app_arm,
        )
    )
    rows = (await session.execute(query)).all()
    return [
        {
            "prompt_version_id": r[0],
            "experiment": r[1],
            "arm": r[2],
            "model": r[3],
            "app_arm": r[4],
            "requests": int(r[5]),
            "errors": int(r[6] or 0),
            "latency_ms_mean": round(float(r[7] or 0.0), 3),
            "cost_usd": round(float(r[8] or 0.0), 8),
            "feedback": {
                "count": int(r[9]),
                "thumbs_up": int(r[10] or 0),
                "rating_mean": None if r[11] is None else round(float(r[11]), 4),
                "ratings": int(r[12] or 0),
            },
        }
        for r in rows
    ]


async def app_shadows(session: AsyncSession, application: str) -> list[dict[str, object]]:
    """An application's shadow pairs (alias ``app:<name>``, shadow model ``<model>@<version id>``)
    per (live version, candidate): pairs, shadow errors, latencies, cost, agreement, and the shadow
    judge's scores (``shadow_judgements``)."""
    alias = f"app:{application}"
    pairs = (
        select(
            ShadowResult.shadow_model,
            UsageLog.prompt_version_id,
            func.count(ShadowResult.id),
            func.count(ShadowResult.shadow_error),
            func.avg(ShadowResult.primary_latency_ms),
            func.avg(ShadowResult.shadow_latency_ms),
            func.sum(ShadowResult.shadow_cost_usd),
            func.avg(ShadowResult.agreement),
        )
        .select_from(ShadowResult)
        .outerjoin(UsageLog, UsageLog.request_id == ShadowResult.request_id)
        .where(ShadowResult.alias == alias)
        .group_by(ShadowResult.shadow_model, UsageLog.prompt_version_id)
    )
    judged = (
        select(
            ShadowJudgement.shadow_model,
            UsageLog.prompt_version_id,
            func.count(ShadowJudgement.id),
            func.count(ShadowJudgement.shadow_score),
            func.avg(ShadowJudgement.primary_score),
            func.avg(ShadowJudgement.shadow_score),
            func.sum(case((ShadowJudgement.winner == "shadow", 1), else_=0)),
            func.sum(case((ShadowJudgement.winner == "primary", 1), else_=0)),
            func.sum(case((ShadowJudgement.winner == "tie", 1), else_=0)),
            func.sum(ShadowJudgement.cost_usd),
        )
        .select_from(ShadowJudgement)
        .outerjoin(ShadowResult, ShadowResult.pair_id == ShadowJudgement.pair_id)
        .outerjoin(UsageLog, UsageLog.request_id == ShadowResult.request_id)
        .where(ShadowJudgement.alias == alias)
        .group_by(ShadowJudgement.shadow_model, UsageLog.prompt_version_id)
    )
    scores = {
        (r[0], r[1]): {
            "calls": int(r[2]),
            "judged": int(r[3]),
            "primary_score_mean": None if r[4] is None else round(float(r[4]), 4),
            "shadow_score_mean": None if r[5] is None else round(float(r[5]), 4),
            "shadow_wins": int(r[6] or 0),
            "primary_wins": int(r[7] or 0),
            "ties": int(r[8] or 0),
            "cost_usd": round(float(r[9] or 0.0), 8),
        }
        for r in (await session.execute(judged)).all()
    }
    out: list[dict[str, object]] = []
    for r in (await session.execute(pairs)).all():
        model, _, candidate = str(r[0]).rpartition("@")
        out.append(
            {
                "candidate_version_id": candidate,
                "candidate_model": model,
                "live_version_id": r[1],
                "pairs": int(r[2]),
                "shadow_errors": int(r[3]),
                "primary_latency_ms_mean": None if r[4] is None else round(float(r[4]), 3),
                "shadow_latency_ms_mean": None if r[5] is None else round(float(r[5]), 3),
                "shadow_cost_usd": round(float(r[6] or 0.0), 8),
                "agreement_mean": None if r[7] is None else round(float(r[7]), 4),
                "judge": scores.get((r[0], r[1])),
            }
        )
    return out
