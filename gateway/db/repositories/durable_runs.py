"""Leases of durable flow runs (``durable_runs``): create, claim, renew, release, finish.

Every write that needs the lease is one conditional ``UPDATE`` (owner, token and expiry in its
``WHERE``), atomic on Postgres and SQLite alike: of two workers claiming the same run, the second
matches no row. Each claim increments ``lease_token``; renewals and the final write name the token
they hold, so a worker whose lease was taken over cannot renew it or finish the run.
Times are the workers' clocks (UTC); the lease length must dwarf the clock skew between hosts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.models import DurableRun, utcnow


class RunExists(Exception):
    """A run with this id was already created."""


@dataclass(frozen=True, slots=True)
class Lease:
    run_id: str
    graph: str
    input: Any
    token: int
    claims: int


def _lease_free(now: datetime) -> Any:
    return or_(DurableRun.owner.is_(None), DurableRun.lease_expires_at < now)


async def create(
    conn: AsyncConnection, *, run_id: str, graph: str, input: Any, owner: str, lease_s: float
) -> Lease:
    """A new run, owned by ``owner`` (token 1). Raises :class:`RunExists` for a taken id."""
    now = utcnow()
    try:
        await conn.execute(
            insert(DurableRun).values(
                run_id=run_id,
                graph=graph,
                status="running",
                input=input,
                owner=owner,
                lease_token=1,
                lease_expires_at=now + timedelta(seconds=lease_s),
                claims=1,
                created_at=now,
                updated_at=now,
            )
        )
    except IntegrityError as exc:
        raise RunExists(run_id) from exc
    return Lease(run_id=run_id, graph=graph, input=input, token=1, claims=1)


async def claim(
    conn: AsyncConnection,
    *,
    run_id: str,
    owner: str,
    lease_s: float,
    statuses: Sequence[str] = ("running",),
) -> Lease | None:
    """Take the lease of a run in one of ``statuses`` whose lease is free (released or expired);
    the run becomes ``running``. ``None``: not found, finished, or another worker holds it."""
    now = utcnow()
    result = await conn.execute(
        update(DurableRun)
        .where(DurableRun.run_id == run_id, DurableRun.status.in_(statuses), _lease_free(now))
        .values(
            status="running",
            owner=owner,
            lease_token=DurableRun.lease_token + 1,
            lease_expires_at=now + timedelta(seconds=lease_s),
            claims=DurableRun.claims + 1,
            updated_at=now,
        )
        .returning(DurableRun.graph, DurableRun.input, DurableRun.lease_token, DurableRun.claims)
    )
    row = result.first()
    if row is None:
        return None
    return Lease(run_id=run_id, graph=row.graph, input=row.input, token=row.lease_token, claims=row.claims)


async def orphans(conn: AsyncConnection, *, graphs: Collection[str], limit: int) -> list[str]:
    """Runs of ``graphs`` left ``running`` with an expired lease (their worker died), oldest first."""
    now = utcnow()
    result = await conn.execute(
        select(DurableRun.run_id)
        .where(DurableRun.status == "running", DurableRun.graph.in_(graphs), _lease_free(now))
        .order_by(DurableRun.updated_at)
        .limit(limit)
    )
    return [row.run_id for row in result]


async def renew(conn: AsyncConnection, *, owner: str, leases: dict[str, int], lease_s: float) -> set[str]:
    """Extend the leases ``{run_id: token}`` this worker holds; returns the run ids it still holds."""
    if not leases:
        return set()
    now = utcnow()
    held = or_(
        *(and_(DurableRun.run_id == rid, DurableRun.lease_token == tok) for rid, tok in leases.items())
    )
    result = await conn.execute(
        update(DurableRun)
        .where(held, DurableRun.owner == owner, DurableRun.status == "running")
        .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
        .returning(DurableRun.run_id)
    )
    return {row.run_id for row in result}


async def release(conn: AsyncConnection, *, run_id: str, owner: str, token: int, status: str) -> bool:
    """Give the lease up, leaving the run ``running`` (another worker may take it at once) or
    ``interrupted`` (it waits for a resume)."""
    result = await conn.execute(
        update(DurableRun)
        .where(DurableRun.run_id == run_id, DurableRun.owner == owner, DurableRun.lease_token == token)
        .values(status=status, owner=None, lease_expires_at=None, updated_at=utcnow())
    )
    return bool(result.rowcount)


async def finish(
    conn: AsyncConnection,
    *,
    run_id: str,
    owner: str,
    token: int,
    status: str,
    result: Any = None,
    error: str | None = None,
) -> bool:
    """Record the outcome, once: only the holder of the current lease token can, and only while
    the run is ``running``. ``False``: the lease was lost (another worker finishes the run)."""
    now = utcnow()
    outcome = await conn.execute(
        update(DurableRun)
        .where(
            DurableRun.run_id == run_id,
            DurableRun.owner == owner,
            DurableRun.lease_token == token,
            DurableRun.status == "running",
        )
        .values(
            status=status,
            result=result,
            error=error,
            owner=None,
            lease_expires_at=None,
            updated_at=now,
            finished_at=now,
        )
    )
    return bool(outcome.rowcount)


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    graph: str
    status: str
    result: Any
    error: str | None
    owner: str | None
    claims: int
    finished_at: datetime | None


async def get(conn: AsyncConnection, run_id: str) -> RunRecord | None:
    columns = [getattr(DurableRun, name) for name in RunRecord.__slots__]
    row = (await conn.execute(select(*columns).where(DurableRun.run_id == run_id))).first()
    return None if row is None else RunRecord(**row._mapping)
