"""Usage logs: idempotent batch inserts and the admin aggregations."""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import ColumnElement, Select, String, and_, case, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.db.models import UsageLog, UsageQuarantine

log = structlog.get_logger(__name__)

Dimension = Literal[
    "user", "key", "model", "provider", "intent", "routing_tier", "tier", "status", "day", "hour"
]
DIMENSIONS: tuple[str, ...] = (
    "user",
    "key",
    "model",
    "provider",
    "intent",
    "routing_tier",
    "tier",
    "status",
    "day",
    "hour",
)
"""``tier`` is the caller's quota tier; ``routing_tier`` the tier smart routing chose (``auto`` only)."""

_COLUMN_OF: dict[str, Any] = {
    "user": UsageLog.user_id,
    "key": UsageLog.api_key_id,
    "model": UsageLog.model_served,
    "provider": UsageLog.provider,
    "intent": UsageLog.intent,
    "routing_tier": UsageLog.routing_tier,
    "tier": UsageLog.tier,
    "status": UsageLog.status,
}


_COUNTS = ("requests", "errors", "cache_hits", "fallbacks", "prompt_tokens", "completion_tokens")


@dataclass(frozen=True, slots=True)
class UsageFilter:
    start: datetime
    end: datetime
    user_id: str | None = None
    api_key_id: str | None = None
    model: str | None = None
    provider: str | None = None
    intent: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [UsageLog.created_at >= self.start, UsageLog.created_at < self.end]
        if self.user_id is not None:
            where.append(UsageLog.user_id == self.user_id)
        if self.api_key_id is not None:
            where.append(UsageLog.api_key_id == self.api_key_id)
        if self.model is not None:
            where.append(UsageLog.model_served == self.model)
        if self.provider is not None:
            where.append(UsageLog.provider == self.provider)
        if self.intent is not None:
            where.append(UsageLog.intent == self.intent)
        return where


_INSERT_IGNORING_DUPLICATES: dict[str, Any] = {
    "postgresql": postgresql.insert(UsageLog)
    .on_conflict_do_nothing(index_elements=["request_id"])
    .returning(UsageLog.request_id),
    "sqlite": sqlite_dialect.insert(UsageLog).on_conflict_do_nothing().returning(UsageLog.request_id),
}
"""Built once: executed with a list of rows, SQLAlchemy renders batched multi-row INSERTs from the
cached compiled form ("insertmanyvalues") instead of compiling a new statement per flush."""


_WIDTHS: tuple[tuple[str, int], ...] = tuple(
    (column.name, column.type.length)
    for column in UsageLog.__table__.columns
    if isinstance(column.type, String) and column.type.length and column.name != "request_id"
)
"""Every bounded text column but the key: a value longer than its column is cut to fit, because
Postgres refuses the whole multi-row INSERT for one over-long value (the batch would be retried,
then spilled, forever) — a usage record must never be lost to a label's length."""


def _fitted(row: Mapping[str, Any]) -> Mapping[str, Any]:
    fitted: dict[str, Any] | None = None
    for name, width in _WIDTHS:
        value = row.get(name)
        if isinstance(value, str) and len(value) > width:
            if fitted is None:
                fitted = dict(row)
            fitted[name] = value[: width - 1] + "…"
    if fitted is not None:
        log.warning("usage_value_truncated", request_id=row.get("request_id"))
        return fitted
    return row


async def insert_ignore_duplicates(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert rows, skipping request ids already stored. Returns how many rows were new."""
    if not rows:
        return 0
    unique = list({row["request_id"]: _fitted(row) for row in rows}.values())
    stmt = _INSERT_IGNORING_DUPLICATES.get(conn.dialect.name)
    if stmt is None:  # pragma: no cover - only Postgres and SQLite are supported
        raise RuntimeError(f"unsupported dialect {conn.dialect.name}")
    result = await conn.execute(stmt, unique)
    return len(result.all())


_QUARANTINE: dict[str, Any] = {
    "postgresql": postgresql.insert(UsageQuarantine).on_conflict_do_nothing(index_elements=["request_id"]),
    "sqlite": sqlite_dialect.insert(UsageQuarantine).on_conflict_do_nothing(),
}


async def quarantine(conn: AsyncConnection, entries: Sequence[Mapping[str, Any]]) -> None:
    """Keep records that cannot be stored as usage, with why (once per request id)."""
    if entries:
        await conn.execute(_QUARANTINE[conn.dialect.name], list(entries))


def _percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation, identical to Postgres ``percentile_cont``."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(sorted_values[low])
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low))


def _bucket(value: datetime, dimension: str) -> str:
    if dimension == "day":
        value = value.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        value = value.replace(minute=0, second=0, microsecond=0)
    return value.isoformat()


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self, *, request_ids: Sequence[str] | None = None) -> int:
        stmt = select(func.count()).select_from(UsageLog)
        if request_ids is not None:
            stmt = stmt.where(UsageLog.request_id.in_(request_ids))
        return int((await self.session.execute(stmt)).scalar_one())

    async def list(self, *, filters: UsageFilter, limit: int) -> Sequence[UsageLog]:
        stmt = select(UsageLog).where(and_(*filters.clauses())).order_by(UsageLog.created_at).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def aggregate(
        self, *, group_by: Sequence[str], filters: UsageFilter, limit: int
    ) -> builtins.list[dict[str, Any]]:
        if self.session.get_bind().dialect.name == "postgresql":
            return await self._aggregate_sql(group_by=group_by, filters=filters, limit=limit)
        return await self._aggregate_python(group_by=group_by, filters=filters, limit=limit)

    async def _aggregate_sql(
        self, *, group_by: Sequence[str], filters: UsageFilter, limit: int
    ) -> builtins.list[dict[str, Any]]:
        keys: list[Any] = []
        for dim in group_by:
            if dim in ("day", "hour"):
                keys.append(func.date_trunc(dim, UsageLog.created_at, "UTC").label(dim))
            else:
                keys.append(_COLUMN_OF[dim].label(dim))
        stmt: Select[Any] = select(
            *keys,
            func.count().label("requests"),
            func.sum(case((UsageLog.http_status >= 400, 1), else_=0)).label("errors"),
            func.sum(case((UsageLog.cache_hit.is_(True), 1), else_=0)).label("cache_hits"),
            func.sum(case((UsageLog.fallback_used.is_(True), 1), else_=0)).label("fallbacks"),
            func.coalesce(func.sum(UsageLog.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageLog.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(UsageLog.cost_usd), 0.0).label("cost_usd"),
            func.percentile_cont(0.5).within_group(UsageLog.latency_ms).label("latency_p50_ms"),
            func.percentile_cont(0.95).within_group(UsageLog.latency_ms).label("latency_p95_ms"),
            func.percentile_cont(0.5).within_group(UsageLog.ttft_ms).label("ttft_p50_ms"),
            func.percentile_cont(0.95).within_group(UsageLog.ttft_ms).label("ttft_p95_ms"),
        ).where(and_(*filters.clauses()))
        if keys:
            stmt = stmt.group_by(*keys).order_by(*keys)
        rows = (await self.session.execute(stmt.limit(limit))).mappings().all()
        out: builtins.list[dict[str, Any]] = []
        for row in rows:
            item = dict(row)
            for dim in ("day", "hour"):
                if isinstance(item.get(dim), datetime):
                    item[dim] = _bucket(item[dim], dim)
            for name in _COUNTS:
                item[name] = int(item[name] or 0)
            item["cost_usd"] = float(item["cost_usd"] or 0.0)
            out.append(item)
        return out

    async def _aggregate_python(
        self, *, group_by: Sequence[str], filters: UsageFilter, limit: int
    ) -> builtins.list[dict[str, Any]]:
        stmt = select(
            UsageLog.created_at,
            UsageLog.user_id,
            UsageLog.api_key_id,
            UsageLog.model_served,
            UsageLog.provider,
            UsageLog.intent,
            UsageLog.routing_tier,
            UsageLog.tier,
            UsageLog.status,
            UsageLog.http_status,
            UsageLog.cache_hit,
            UsageLog.fallback_used,
            UsageLog.prompt_tokens,
            UsageLog.completion_tokens,
            UsageLog.cost_usd,
            UsageLog.latency_ms,
            UsageLog.ttft_ms,
        ).where(and_(*filters.clauses()))
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        attr = {
            "user": "user_id",
            "key": "api_key_id",
            "model": "model_served",
            "provider": "provider",
            "intent": "intent",
            "routing_tier": "routing_tier",
            "tier": "tier",
            "status": "status",
        }
        for row in (await self.session.execute(stmt)).all():
            key_values: builtins.list[Any] = []
            for dim in group_by:
                if dim in ("day", "hour"):
                    key_values.append(_bucket(row.created_at, dim))
                else:
                    key_values.append(getattr(row, attr[dim]))
            group = groups.setdefault(
                tuple(key_values),
                {
                    "requests": 0,
                    "errors": 0,
                    "cache_hits": 0,
                    "fallbacks": 0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cost_usd": 0.0,
                    "_lat": [],
                    "_ttft": [],
                },
            )
            group["requests"] += 1
            group["errors"] += 1 if row.http_status >= 400 else 0
            group["cache_hits"] += 1 if row.cache_hit else 0
            group["fallbacks"] += 1 if row.fallback_used else 0
            group["prompt_tokens"] += row.prompt_tokens
            group["completion_tokens"] += row.completion_tokens
            group["cost_usd"] += row.cost_usd
            group["_lat"].append(row.latency_ms)
            if row.ttft_ms is not None:
                group["_ttft"].append(row.ttft_ms)
        if not group_by and not groups:
            groups[()] = {
                "requests": 0,
                "errors": 0,
                "cache_hits": 0,
                "fallbacks": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost_usd": 0.0,
                "_lat": [],
                "_ttft": [],
            }
        out: builtins.list[dict[str, Any]] = []
        for group_key, group in sorted(
            groups.items(), key=lambda kv: tuple((v is None, v or "") for v in kv[0])
        ):
            lat = sorted(group.pop("_lat"))
            ttft = sorted(group.pop("_ttft"))
            item: dict[str, Any] = dict(zip(group_by, group_key, strict=True))
            item.update(group)
            item["latency_p50_ms"] = _percentile(lat, 0.5)
            item["latency_p95_ms"] = _percentile(lat, 0.95)
            item["ttft_p50_ms"] = _percentile(ttft, 0.5)
            item["ttft_p95_ms"] = _percentile(ttft, 0.95)
            out.append(item)
        return out[:limit]
