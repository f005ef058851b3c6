"""Admin usage reports: validated ranges and groupings over usage_logs."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.repositories.usage import DIMENSIONS, UsageFilter, UsageRepository
from gateway.errors import InvalidRequest

MAX_RANGE = timedelta(days=366)
METRICS = (
    "requests",
    "errors",
    "cache_hits",
    "fallbacks",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
)
RAW_COLUMNS = (
    "request_id", "created_at", "user_id", "api_key_id", "tier", "route", "model_requested", "model_served",
    "provider", "intent", "routing_tier", "experiment", "arm", "cache_hit", "streamed", "status",
    "http_status",
    "error_type", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "cost_usd",
    "latency_ms", "ttft_ms", "attempts", "fallback_used", "guard_flags", "conversation_id",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class UsageQuery:
    filters: UsageFilter
    group_by: tuple[str, ...]
    limit: int


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def build_query(
    *,
    start: datetime | None,
    end: datetime | None,
    group_by: str | None,
    limit: int,
    user_id: str | None = None,
    api_key_id: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    intent: str | None = None,
) -> UsageQuery:
    end_at = _aware(end) if end else datetime.now(UTC)
    start_at = _aware(start) if start else end_at - timedelta(days=1)
    if start_at >= end_at:
        raise InvalidRequest("start must be before end", param="start")
    if end_at - start_at > MAX_RANGE:
        raise InvalidRequest("The time range may span at most 366 days", param="start")
    dims: list[str] = []
    for part in (group_by or "").split(","):
        name = part.strip()
        if not name:
            continue
        if name not in DIMENSIONS:
            raise InvalidRequest(f"Unknown group_by {name!r}; use {', '.join(DIMENSIONS)}", param="group_by")
        if name not in dims:
            dims.append(name)
    if "day" in dims and "hour" in dims:
        raise InvalidRequest("Group by day or hour, not both", param="group_by")
    if not 1 <= limit <= 10_000:
        raise InvalidRequest("limit must be between 1 and 10000", param="limit")
    return UsageQuery(
        filters=UsageFilter(
            start=start_at,
            end=end_at,
            user_id=user_id,
            api_key_id=api_key_id,
            model=model,
            provider=provider,
            intent=intent,
        ),
        group_by=tuple(dims),
        limit=limit,
    )


async def usage_report(session: AsyncSession, *, query: UsageQuery) -> list[dict[str, Any]]:
    return await UsageRepository(session).aggregate(
        group_by=query.group_by, filters=query.filters, limit=query.limit
    )


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else _safe_cell(v) for v in row])
    return buffer.getvalue()


def _safe_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas in user-influenced strings (CSV injection)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def usage_export_csv(session: AsyncSession, *, query: UsageQuery) -> str:
    """Aggregated rows when grouped, otherwise the raw usage rows of the range (up to ``limit``)."""
    if query.group_by:
        report = await usage_report(session, query=query)
        header = [*query.group_by, *METRICS]
        return _csv(header, [[item.get(col) for col in header] for item in report])
    logs = await UsageRepository(session).list(filters=query.filters, limit=query.limit)
    return _csv(RAW_COLUMNS, [[getattr(log, col) for col in RAW_COLUMNS] for log in logs])
