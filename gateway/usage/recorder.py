"""Durable, non-blocking usage logging.

``record()`` appends to an in-memory buffer and returns at once. A background task writes batches
(one multi-row INSERT each, idempotent on ``request_id``) every ``usage_flush_interval_s`` or as soon
as ``usage_batch_size`` records wait. When the database is slow or down, batches are retried with
exponential backoff; once more than ``usage_spill_threshold`` records wait, they are appended to
JSONL files in ``usage_spill_dir`` (fsync'd) and replayed when the database answers again (also at
start-up, so a crash after spilling loses nothing). ``aclose()`` writes everything (or spills it).
Records are dropped only if the buffer hits ``usage_buffer_max`` *and* spilling failed; the
``prism_usage_dropped`` counter then says how many.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.repositories.usage import insert_ignore_duplicates
from gateway.observability.metrics import USAGE_DROPPED, USAGE_FLUSH_LATENCY, USAGE_QUEUE_DEPTH, USAGE_RECORDS
from gateway.settings import Settings
from gateway.usage.record import UsageRecord

log = structlog.get_logger(__name__)

_MAX_BACKOFF_S = 5.0


def _to_row(rec: UsageRecord) -> dict[str, Any]:
    return rec.as_row()


def _encode(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row) + b"\n"


def _decode(line: bytes) -> dict[str, Any]:
    row: dict[str, Any] = orjson.loads(line)
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row


class UsageRecorder:
    def __init__(self, *, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.batch_size = max(1, settings.usage_batch_size)
        self.interval_s = settings.usage_flush_interval_s
        self.buffer_max = settings.usage_buffer_max
        self.spill_threshold = min(settings.usage_spill_threshold, settings.usage_buffer_max)
        self.spill_dir = Path(settings.usage_spill_dir)
        self._buffer: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._db_ok = True
        self._backoff_s = 0.0
        self.dropped = 0

    # ------------------------------------------------------------------ request path
    def record(self, rec: UsageRecord) -> None:
        """Synchronous and non-blocking: never waits for the database."""
        if len(self._buffer) >= self.buffer_max:
            self.dropped += 1
            USAGE_DROPPED.inc()
            USAGE_RECORDS.labels(outcome="dropped").inc()
            log.error("usage_record_dropped", request_id=rec.request_id, depth=len(self._buffer))
            return
        self._buffer.append(_to_row(rec))
        USAGE_QUEUE_DEPTH.inc()
        USAGE_RECORDS.labels(outcome="queued").inc()
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    @property
    def depth(self) -> int:
        return len(self._buffer)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def aclose(self, *, timeout_s: float | None = None) -> None:
        """Stop the loop and write everything still buffered; spill what the database refuses."""
        self._closing = True
        self._wake.set()
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.settings.drain_timeout_s)
        if self._task is not None:
            # Let the loop finish the write it may be in: cancelled mid-transaction, an aiosqlite
            # write kept its lock and the final flush below waited out SQLite's busy timeout, then
            # spilled every record of a graceful stop. Cancel only a loop that overruns the deadline.
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        while self._buffer and time.monotonic() < deadline:
            if not await self._flush_once():
                break
        if self._buffer:
            await self._spill_all()
        else:
            with contextlib.suppress(Exception):
                await self.replay_spilled()

    async def flush(self) -> None:
        """Write everything buffered now (tests, admin endpoints)."""
        while self._buffer:
            if not await self._flush_once():
                raise RuntimeError("usage flush failed")

    # ------------------------------------------------------------------ background loop
    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            await self.replay_spilled()
        while True:
            wait = self._backoff_s if self._backoff_s else self.interval_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                ok = await self._flush_once()
                if not ok:
                    if len(self._buffer) > self.spill_threshold:
                        await self._spill_all()
                    break
                if len(self._buffer) < self.batch_size:
                    break
            if self._closing:
                return  # aclose writes (or spills) whatever is left
            if self._db_ok and self._has_spill_files():
                try:
                    await self.replay_spilled()
                except Exception:
                    log.warning("usage_replay_failed", exc_info=True)

    async def _flush_once(self) -> bool:
        batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
        if not batch:
            return True
        USAGE_QUEUE_DEPTH.dec(len(batch))
        try:
            await self._write(batch)
        except BaseException as exc:
            # Put the batch back whatever interrupted the write — a cancelled flush (aclose cancels
            # this loop) would otherwise lose it. Re-writing is safe: inserts ignore known request ids.
            self._buffer.extendleft(reversed(batch))
            USAGE_QUEUE_DEPTH.inc(len(batch))
            if not isinstance(exc, Exception):
                raise
            USAGE_RECORDS.labels(outcome="retried").inc(len(batch))
            self._db_ok = False
            self._backoff_s = min(max(self._backoff_s * 2, 0.1), _MAX_BACKOFF_S)
            log.warning(
                "usage_flush_failed",
                error=type(exc).__name__,
                detail=str(exc).splitlines()[0][:200] if str(exc) else None,
                depth=len(self._buffer),
                retry_in_s=self._backoff_s,
            )
            return False
        if not self._db_ok:
            log.info("usage_database_recovered", depth=len(self._buffer))
        self._db_ok = True
        self._backoff_s = 0.0
        return True

    async def _write(self, rows: Sequence[dict[str, Any]]) -> None:
        started = time.perf_counter()
        async with self.engine.begin() as conn:
            inserted = await insert_ignore_duplicates(conn, rows)
        USAGE_FLUSH_LATENCY.observe(time.perf_counter() - started)
        USAGE_RECORDS.labels(outcome="written").inc(inserted)
        if len(rows) > inserted:
            USAGE_RECORDS.labels(outcome="duplicate").inc(len(rows) - inserted)

    # ------------------------------------------------------------------ spill files
    def _has_spill_files(self) -> bool:
        return self.spill_dir.is_dir() and any(self.spill_dir.glob("*.jsonl"))

    async def _spill_all(self) -> None:
        rows = list(self._buffer)
        if not rows:
            return
        try:
            path = await asyncio.to_thread(self._write_spill_file, rows)
        except OSError:
            log.error("usage_spill_failed", depth=len(rows), exc_info=True)
            return
        for _ in rows:
            self._buffer.popleft()
        USAGE_QUEUE_DEPTH.dec(len(rows))
        USAGE_RECORDS.labels(outcome="spilled").inc(len(rows))
        log.warning("usage_spilled", records=len(rows), file=path.name)

    def _write_spill_file(self, rows: Sequence[dict[str, Any]]) -> Path:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        name = f"usage-{os.getpid()}-{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        tmp = self.spill_dir / f"{name}.jsonl.tmp"
        final = self.spill_dir / f"{name}.jsonl"
        with open(tmp, "ab") as fh:
            for row in rows:
                fh.write(_encode(row))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self.spill_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return final

    async def replay_spilled(self) -> int:
        """Insert every spilled file (idempotently) and delete it; returns records replayed."""
        if not self.spill_dir.is_dir():
            return 0
        total = 0
        for path in sorted(self.spill_dir.glob("*.jsonl")):
            claimed = path.with_suffix(f".replaying-{os.getpid()}")
            try:
                os.replace(path, claimed)  # another worker may be replaying the same file
            except FileNotFoundError:
                continue
            try:
                rows = await asyncio.to_thread(self._read_spill_file, claimed)
                for start in range(0, len(rows), self.batch_size):
                    await self._write(rows[start : start + self.batch_size])
            except Exception:
                os.replace(claimed, path)
                raise
            claimed.unlink()
            total += len(rows)
            USAGE_RECORDS.labels(outcome="replayed").inc(len(rows))
            log.info("usage_spill_replayed", records=len(rows), file=path.name)
        return total

    @staticmethod
    def _read_spill_file(path: Path) -> list[dict[str, Any]]:
        rows = []
        with open(path, "rb") as fh:
            for line in fh:
                if line.strip():
                    try:
                        rows.append(_decode(line))
                    except (orjson.JSONDecodeError, KeyError, ValueError):
                        log.error("usage_spill_line_corrupt", file=path.name)
        return rows
