"""Jobs (``jobs``): create, read, list, claim, renew, progress, finish, cancel.

Like ``durable_runs``, every write a worker makes is one conditional ``UPDATE`` naming its
``lease_token``: a claim increments it, so a worker whose job was taken over (its lease expired)
can neither renew, report progress nor finish it. The outcome and the job's usage row are written
in one transaction by the holder of the current token: a job finishes exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.models import Job, utcnow

TERMINAL = ("succeeded", "failed", "cancelled")


class IdempotencyConflict(Exception):
    """This caller already submitted a job with this ``Idempotency-Key``."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class JobLease:
    job_id: str
    token: int
    attempts: int


async def create(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    """Insert a queued job; raises :class:`IdempotencyConflict` when its idempotency key is taken."""
    now = utcnow()
    try:
        await conn.execute(
            insert(Job).values(status="queued", progress={}, created_at=now, updated_at=now, **values)
        )
    except IntegrityError as exc:
        key = values.get("idempotency_key")
        if key is None:
            raise
        existing = await find_by_idempotency_key(conn, user_id=values.get("user_id"), key=key)
        if existing is None:
            raise
        raise IdempotencyConflict(existing.id) from exc


async def find_by_idempotency_key(conn: AsyncConnection, *, user_id: str | None, key: str) -> Any:
    owner = Job.user_id.is_(None) if user_id is None else Job.user_id == user_id
    result = await conn.execute(select(Job).where(owner, Job.idempotency_key == key))
    return result.first()


async def get(conn: AsyncConnection, job_id: str) -> Any:
    """The job's row (attribute access), or None."""
    result = await conn.execute(select(Job).where(Job.id == job_id))
    return result.first()


async def list_jobs(
    conn: AsyncConnection, *, user_id: str | None, everyone: bool, limit: int, status: str | None = None
) -> Sequence[Any]:
    query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit)
    if not everyone:
        query = query.where(Job.user_id.is_(None) if user_id is None else Job.user_id == user_id)
    if status is not None:
        query = query.where(Job.status == status)
    return (await conn.execute(query)).all()


async def usage_since(
    conn: AsyncConnection, *, api_key_id: str | None, user_id: str | None, since: datetime
) -> tuple[int, int]:
    """Pages submitted and LLM tokens used by jobs of this key (or user, without a key) since ``since``."""
    owner = (
        Job.api_key_id == api_key_id
        if api_key_id
        else (Job.user_id.is_(None) if user_id is None else Job.user_id == user_id)
    )
    row = (
        await conn.execute(
            select(func.coalesce(func.sum(Job.pages), 0), func.coalesce(func.sum(Job.tokens), 0)).where(
                owner, Job.created_at >= since, Job.status != "rejected"
            )
        )
    ).one()
    return int(row[0]), int(row[1])


def _free(now: datetime) -> Any:
    return or_(Job.status == "queued", Job.lease_expires_at < now)


async def claim(conn: AsyncConnection, *, job_id: str, owner: str, lease_s: float) -> JobLease | None:
    """Take a queued job, or a running one whose worker's lease expired (it died). None: finished,
    cancelled, unknown, or another worker holds it."""
    now = utcnow()
    result = await conn.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "running")), _free(now))
        .values(
            status="running",
            owner=owner,
            lease_token=Job.lease_token + 1,
            lease_expires_at=now + timedelta(seconds=lease_s),
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),
            updated_at=now,
        )
        .returning(Job.lease_token, Job.attempts)
    )
    row = result.first()
    return None if row is None else JobLease(job_id, row.lease_token, row.attempts)


async def claimable(conn: AsyncConnection, *, limit: int) -> list[str]:
    """Queued jobs, and running ones whose lease expired, oldest first (the in-process worker)."""
    now = utcnow()
    result = await conn.execute(
        select(Job.id)
        .where(Job.status.in_(("queued", "running")), _free(now))
        .order_by(Job.created_at)
        .limit(limit)
    )
    return [row.id for row in result]


async def renew(
    conn: AsyncConnection, *, lease: JobLease, lease_s: float, progress: Any = None, tokens: int | None = None
) -> bool:
    """Extend the lease (and store progress); False when the job is no longer this worker's (taken
    over or cancelled)."""
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_s), "updated_at": now}
    if progress is not None:
        values["progress"] = progress
    if tokens is not None:
        values["tokens"] = tokens
    result = await conn.execute(
        update(Job)
        .where(Job.id == lease.job_id, Job.lease_token == lease.token, Job.status == "running")
        .values(**values)
        .returning(Job.id)
    )
    return result.first() is not None


async def finish(
    conn: AsyncConnection,
    *,
    lease: JobLease,
    status: str,
    result: Any = None,
    error: Any = None,
    progress: Any = None,
    tokens: int = 0,
) -> bool:
    """Write the outcome once: only the holder of the current token of a running job matches."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "result": result,
        "error": error,
        "tokens": tokens,
        "owner": None,
        "lease_expires_at": None,
        "finished_at": now,
        "updated_at": now,
    }
    if progress is not None:
        values["progress"] = progress
    written = await conn.execute(
        update(Job)
        .where(Job.id == lease.job_id, Job.lease_token == lease.token, Job.status == "running")
        .values(**values)
        .returning(Job.id)
    )
    return written.first() is not None


async def fail_unclaimed(conn: AsyncConnection, *, job_id: str, error: Any, owner: str | None = None) -> bool:
    """Fail a job no worker holds, or that ``owner`` (the caller) holds (dead-lettered)."""
    now = utcnow()
    held = _free(now) if owner is None else or_(_free(now), Job.owner == owner)
    written = await conn.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "running")), held)
        .values(
            status="failed", error=error, owner=None, lease_expires_at=None, finished_at=now, updated_at=now
        )
        .returning(Job.id)
    )
    return written.first() is not None


async def cancel(conn: AsyncConnection, *, job_id: str) -> bool:
    """Cancel a job that has not finished; its worker notices at its next lease renewal."""
    now = utcnow()
    written = await conn.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "running")))
        .values(status="cancelled", owner=None, lease_expires_at=None, finished_at=now, updated_at=now)
        .returning(Job.id)
    )
    return written.first() is not None
