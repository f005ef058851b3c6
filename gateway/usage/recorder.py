"""The usage ledger's writer: durable before the answer ends, batched into the database off the path.

``record()`` appends the record to this worker's active segment file (``gateway/usage/segments.py``:
one ``write()``, durable against SIGKILL) and keeps it in memory; it never waits for the database.
A background task seals the active segment every ``usage_flush_interval_s`` (or once
``usage_batch_size`` records wait) and inserts its records — multi-row INSERTs, idempotent on the
server-minted ``request_id`` — then deletes the file. While the database is down, sealed segments
wait on disk and are retried with exponential backoff (their rows leave memory past
``usage_buffer_max``); on start-up and every ``usage_orphan_scan_s`` a worker also replays the
segments that a dead worker left, whatever state it died in.

One bad record never blocks the rest: records are validated before the insert (text the database
cannot store, integers outside its columns, non-finite numbers) and a batch the database refuses with
a data error is retried row by row; whatever cannot be stored goes to the ``usage_quarantine`` table
with its reason (metric ``prism_usage_quarantined_total``), or to a local file if even that fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Boolean, Float, Integer, String
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.background import BackgroundWorker
from gateway.config.settings import Settings
from gateway.db.models import UsageLog
from gateway.db.repositories.usage import insert_ignore_duplicates, quarantine
from gateway.errors import sqlstate
from gateway.observability.metrics import (
    USAGE_DROPPED,
    USAGE_FLUSH_LATENCY,
    USAGE_PENDING_SEGMENTS,
    USAGE_QUARANTINED,
    USAGE_QUEUE_DEPTH,
    USAGE_RECORDS,
)
from gateway.schemas.storable import text_problem
from gateway.usage.record import UsageRecord
from gateway.usage.segments import Segment, SegmentLog

log = structlog.get_logger(__name__)

_MAX_BACKOFF_S = 5.0
_INT32 = (-(2**31), 2**31 - 1)


def _columns_of(kind: type) -> tuple[str, ...]:
    return tuple(c.name for c in UsageLog.__table__.columns if isinstance(c.type, kind))


_TEXT_COLUMNS = _columns_of(String)
_INT_COLUMNS = _columns_of(Integer)
_FLOAT_COLUMNS = _columns_of(Float)
_BOOL_COLUMNS = _columns_of(Boolean)
_NULLABLE = frozenset(c.name for c in UsageLog.__table__.columns if c.nullable)


def invalid_reason(row: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(reason, detail)`` when the database could not store ``row`` as it is, else ``None``.
    Over-long labels are not a reason: the insert cuts them to fit (``insert_ignore_duplicates``)."""
    request_id = row.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 64 or text_problem(request_id):
        return "invalid_request_id", "request_id is missing, too long or not storable text"
    if not isinstance(row.get("created_at"), datetime):
        return "invalid_timestamp", "created_at is not a timestamp"
    for name in _TEXT_COLUMNS:
        value = row.get(name)
        if value is None:
            if name not in _NULLABLE:
                return "missing_value", f"{name} is missing"
            continue
        if not isinstance(value, str):
            return "wrong_type", f"{name} is not text"
        problem = text_problem(value)
        if problem is not None:
            return "unstorable_text", f"{name} {problem}"
    for name in _INT_COLUMNS:
        value = row.get(name)
        if value is None and name in _NULLABLE:
            continue
        if type(value) is not int or not _INT32[0] <= value <= _INT32[1]:
            return "integer_out_of_range", f"{name} is not a 32-bit integer"
    for name in _FLOAT_COLUMNS:
        value = row.get(name)
        if value is None and name in _NULLABLE:
            continue
        if not isinstance(value, int | float) or not math.isfinite(value):
            return "non_finite_number", f"{name} is not a finite number"
    for name in _BOOL_COLUMNS:
        if not isinstance(row.get(name), bool):
            return "wrong_type", f"{name} is not a boolean"
    return None


def _is_data_error(exc: BaseException) -> bool:
    """The database (or the driver's encoding) refused these values: retrying cannot help.
    SQLSTATE class 22 is "data exception" (NUL in text, invalid encoding, numeric out of range),
    class 23 "integrity constraint violation"."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    state = sqlstate(exc)
    if state is not None:
        return state[:2] in {"22", "23"}
    return type(exc) is StatementError and isinstance(exc.orig, ValueError | TypeError | OverflowError)


def _from_disk(row: dict[str, Any]) -> dict[str, Any]:
    created = row.get("created_at")
    if isinstance(created, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(created)
            row["created_at"] = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    row.setdefault("client_request_id", None)
    return row


def _ascii_json(row: object) -> str:
    """The record as JSON any database column can hold: non-ASCII, NUL and lone surrogates escaped."""
    return json.dumps(row, ensure_ascii=True, default=str, sort_keys=True)


class _Outage(Exception):
    """The database could not be reached (or failed for a reason other than the data)."""


class UsageRecorder:
    def __init__(self, *, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.batch_size = max(1, settings.usage_batch_size)
        self.interval_s = settings.usage_flush_interval_s
        self.buffer_max = settings.usage_buffer_max
        self.orphan_scan_s = settings.usage_orphan_scan_s
        self.spill_dir = Path(settings.usage_spill_dir)
        self.segments = SegmentLog(self.spill_dir, fsync=settings.usage_fsync)
        self._pending: deque[Segment] = deque()
        """Sealed segments of this worker, oldest first, not yet (all) in the database."""
        self._in_memory = 0
        self._draining = asyncio.Lock()
        """One writer at a time (the loop, ``flush``, ``aclose``): segments are written in order."""
        self._worker = BackgroundWorker(
            "usage_recorder",
            self._round,
            interval_s=lambda: self._backoff_s or self.interval_s,
            backoff=None,  # the outage backoff is the recorder's own (``_outage``), shared with ``flush``
            first=self._scan_orphans,
        )
        self._db_ok = True
        self._backoff_s = 0.0
        self._next_scan = 0.0
        self.dropped = 0

    # ------------------------------------------------------------------ request path
    def record(self, rec: UsageRecord) -> None:
        """Synchronous: the record is on disk (or, if the disk refused, in memory) when this returns."""
        if not self.segments.append(rec.as_row()):
            USAGE_RECORDS.labels(outcome="unpersisted").inc()
        USAGE_QUEUE_DEPTH.inc()
        USAGE_RECORDS.labels(outcome="queued").inc()
        active = self.segments.active
        if active is not None and active.count >= self.batch_size:
            self._worker.wake()

    @property
    def depth(self) -> int:
        """Records of this worker not yet in the database."""
        active = self.segments.active
        return (active.count if active is not None else 0) + sum(s.count for s in self._pending)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._worker.start()

    async def aclose(self, *, timeout_s: float | None = None) -> None:
        """Stop the loop and write what waits; what the database refuses stays on disk for replay."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.settings.drain_timeout_s)
        # Let the loop finish the write it may be in: cancelled mid-transaction, an aiosqlite
        # write kept its lock and the final flush below waited out SQLite's busy timeout.
        await self._worker.stop(timeout_s=max(deadline - time.monotonic(), 0.0))
        self._seal()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.1)):
                await self._drain()
        kept = self._release_all()
        if kept:
            log.warning("usage_left_on_disk", records=kept, directory=str(self.spill_dir))

    async def flush(self) -> None:
        """Write everything recorded so far now (tests, admin endpoints)."""
        self._seal()
        if not await self._drain():
            raise RuntimeError("usage flush failed")

    async def replay_spilled(self) -> int:
        """Replay every segment no live worker holds (a dead worker's); returns records replayed."""
        total = 0
        for segment in self.segments.claim_orphans():
            try:
                rows = await asyncio.to_thread(self.segments.read, segment)
                await self._store([_from_disk(row) for row in rows])
            except BaseException:
                self.segments.release(segment)
                raise
            self.segments.finish(segment)
            total += len(rows)
            USAGE_RECORDS.labels(outcome="replayed").inc(len(rows))
            log.info("usage_segment_replayed", records=len(rows), file=segment.path.name)
        return total

    # ------------------------------------------------------------------ background loop
    async def _round(self) -> bool:
        """One round of the worker (``aclose`` writes whatever is left after the last one):
        ``False`` when the database is out (the segments stay; ``_backoff_s`` paces the retry)."""
        self._seal()
        if not await self._drain():
            return False
        if time.monotonic() >= self._next_scan:
            return await self._scan_orphans()
        return True

    async def _scan_orphans(self) -> bool:
        self._next_scan = time.monotonic() + self.orphan_scan_s
        try:
            await self.replay_spilled()
        except _Outage:
            return False  # logged by _store; the segment stays for the next scan
        except Exception:
            log.warning("usage_replay_failed", exc_info=True)
            return False
        return True

    def _seal(self) -> None:
        segment = self.segments.seal()
        if segment is not None:
            self._pending.append(segment)
            self._in_memory += segment.count

    async def _drain(self) -> bool:
        """Write the pending segments in order; ``False`` at the first outage (they stay)."""
        async with self._draining:
            return await self._drain_locked()

    async def _drain_locked(self) -> bool:
        while self._pending:
            segment = self._pending[0]
            try:
                rows = segment.rows if segment.rows is not None else await self._read(segment)
                await self._store(rows)
            except _Outage:
                self._bound_memory()
                return False
            self._pending.popleft()
            if segment.rows is not None:
                self._in_memory -= segment.count
            USAGE_QUEUE_DEPTH.dec(segment.count)
            self.segments.finish(segment)
        USAGE_PENDING_SEGMENTS.set(0)
        return True

    async def _read(self, segment: Segment) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(self.segments.read, segment)
        return [_from_disk(row) for row in rows]

    def _bound_memory(self) -> None:
        """While the database is down, keep at most ``usage_buffer_max`` rows in memory: older
        segments are read back from their files. Rows whose file write failed have no other copy;
        past the bound they are dropped, and counted."""
        USAGE_PENDING_SEGMENTS.set(len(self._pending))
        for segment in self._pending:
            if self._in_memory <= self.buffer_max:
                return
            if segment.rows is None:
                continue
            if not segment.on_disk:
                self.dropped += segment.count
                USAGE_DROPPED.inc(segment.count)
                USAGE_RECORDS.labels(outcome="dropped").inc(segment.count)
                log.error("usage_records_dropped", records=segment.count, reason="memory_bound_no_disk")
                segment.rows = []
                USAGE_QUEUE_DEPTH.dec(segment.count)
                segment.count = 0
            else:
                self._in_memory -= segment.count
                segment.rows = None

    def _release_all(self) -> int:
        kept = sum(s.count for s in self._pending)
        for segment in self._pending:
            self.segments.release(segment)
        self._pending.clear()
        self.segments.close()
        return kept

    # ------------------------------------------------------------------ the database
    async def _store(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (idempotently), quarantining those that cannot be stored; ``_Outage``
        when the database cannot be used now (nothing is lost: the caller keeps the segment)."""
        valid: list[dict[str, Any]] = []
        refused: list[tuple[dict[str, Any], str, str]] = []
        for row in rows:
            problem = invalid_reason(row)
            if problem is None:
                valid.append(row)
            else:
                refused.append((row, *problem))
        for start in range(0, len(valid), self.batch_size):
            batch = valid[start : start + self.batch_size]
            try:
                await self._insert(batch)
            except Exception as exc:
                if not _is_data_error(exc):
                    self._outage(exc)
                refused.extend(await self._insert_one_by_one(batch))
        if refused:
            await self._quarantine(refused)
        if not self._db_ok:
            log.info("usage_database_recovered", pending=len(self._pending))
        self._db_ok = True
        self._backoff_s = 0.0

    async def _insert(self, rows: Sequence[dict[str, Any]]) -> None:
        started = time.perf_counter()
        async with self.engine.begin() as conn:
            inserted = await insert_ignore_duplicates(conn, rows)
        USAGE_FLUSH_LATENCY.observe(time.perf_counter() - started)
        USAGE_RECORDS.labels(outcome="written").inc(inserted)
        if len(rows) > inserted:
            USAGE_RECORDS.labels(outcome="duplicate").inc(len(rows) - inserted)

    async def _insert_one_by_one(
        self, rows: Sequence[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], str, str]]:
        """A batch the database refused for its data: find the rows to blame."""
        refused = []
        for row in rows:
            try:
                await self._insert([row])
            except Exception as exc:
                if not _is_data_error(exc):
                    self._outage(exc)
                detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:500]
                refused.append((row, "database_refused", detail))
        return refused

    async def _quarantine(self, refused: Sequence[tuple[dict[str, Any], str, str]]) -> None:
        entries: list[dict[str, Any]] = [
            {
                "request_id": _ascii_json(row.get("request_id"))[1:-1][:64]
                if isinstance(row.get("request_id"), str)
                else None,
                "reason": reason,
                "detail": _ascii_json(detail)[1:-1],
                "payload": _ascii_json(row),
                "created_at": datetime.now(UTC),
            }
            for row, reason, detail in refused
        ]
        try:
            async with self.engine.begin() as conn:
                await quarantine(conn, entries)
        except Exception as exc:
            if not _is_data_error(exc):
                self._outage(exc)
            await asyncio.to_thread(self._quarantine_to_file, entries)
        for entry in entries:
            USAGE_QUARANTINED.labels(reason=entry["reason"]).inc()
            log.error(
                "usage_record_quarantined",
                request_id=entry["request_id"],
                reason=entry["reason"],
                detail=entry["detail"][:200],
            )
        USAGE_RECORDS.labels(outcome="quarantined").inc(len(entries))

    def _quarantine_to_file(self, entries: Sequence[dict[str, Any]]) -> None:
        directory = self.spill_dir / "quarantine"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"quarantine-{time.time_ns()}-{uuid.uuid4().hex[:8]}.jsonl"
        with open(path, "w", encoding="ascii") as fh:
            for entry in entries:
                fh.write(_ascii_json(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _outage(self, exc: BaseException) -> None:
        USAGE_RECORDS.labels(outcome="retried").inc()
        self._db_ok = False
        self._backoff_s = min(max(self._backoff_s * 2, 0.1), _MAX_BACKOFF_S)
        log.warning(
            "usage_flush_failed",
            error=type(exc).__name__,
            detail=str(exc).splitlines()[0][:200] if str(exc) else None,
            pending_segments=len(self._pending),
            retry_in_s=self._backoff_s,
        )
        raise _Outage from exc
