"""UsageRecorder: exactly-once rows, idempotency, DB outage with segments kept + replayed, flush on close."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.db.engine import create_engine
from gateway.db.migrate import migrate
from gateway.db.models import UsageLog
from gateway.db.repositories.usage import insert_ignore_duplicates
from gateway.usage.record import UsageRecord, UsageStatus
from gateway.usage.recorder import UsageRecorder
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.db_fixtures import PostgresInstance, create_database, db_test_settings

pytestmark = pytest.mark.integration


async def _count(engine: object, ids: list[str]) -> int:
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(engine, AsyncEngine)
    async with engine.connect() as conn:
        result = await conn.execute(
            select(func.count()).select_from(UsageLog).where(UsageLog.request_id.in_(ids))
        )
        return int(result.scalar_one())


def _spilled(directory: Path, pattern: str = "*.seg") -> list[Path]:
    return list(directory.glob(pattern))


def _rec(request_id: str, **kw: object) -> UsageRecord:
    return UsageRecord(request_id=request_id, user_id="u1", model_served="m", prompt_tokens=3, **kw)  # type: ignore[arg-type]


async def test_concurrent_records_written_exactly_once(db_url: str, tmp_path: Path) -> None:
    settings = db_test_settings(
        db_url, usage_batch_size=50, usage_flush_interval_s=0.05, usage_spill_dir=tmp_path
    )
    engine = create_engine(settings)
    recorder = UsageRecorder(settings=settings, engine=engine)
    await recorder.start()
    ids = [f"req-{uuid.uuid4().hex}" for _ in range(1000)]

    async def producer(chunk: list[str]) -> None:
        for rid in chunk:
            recorder.record(_rec(rid, status=UsageStatus.OK))
            await asyncio.sleep(0)

    await asyncio.gather(*(producer(ids[i::10]) for i in range(10)))
    for _ in range(100):
        if await _count(engine, ids) == len(ids):
            break
        await asyncio.sleep(0.05)
    assert await _count(engine, ids) == len(ids)
    await recorder.aclose()
    assert recorder.dropped == 0
    await engine.dispose()


async def test_duplicates_not_double_counted_and_aclose_flushes(db_url: str, tmp_path: Path) -> None:
    settings = db_test_settings(
        db_url, usage_batch_size=1000, usage_flush_interval_s=60, usage_spill_dir=tmp_path
    )
    engine = create_engine(settings)
    recorder = UsageRecorder(settings=settings, engine=engine)
    await recorder.start()
    ids = [f"dup-{uuid.uuid4().hex}" for _ in range(20)]
    for rid in ids + ids:  # every id twice in one batch
        recorder.record(_rec(rid))
    assert await _count(engine, ids) == 0  # interval is 60 s: nothing written yet
    await recorder.aclose()  # the SIGTERM path writes everything
    assert await _count(engine, ids) == 20
    # and again in a later batch
    recorder2 = UsageRecorder(settings=settings, engine=engine)
    for rid in ids:
        recorder2.record(_rec(rid))
    await recorder2.flush()
    assert await _count(engine, ids) == 20
    async with engine.connect() as conn:
        total = (
            await conn.execute(select(func.sum(UsageLog.prompt_tokens)).where(UsageLog.request_id.in_(ids)))
        ).scalar_one()
    assert total == 60
    await engine.dispose()


async def test_insert_reports_only_new_rows_across_batches(db_url: str, tmp_path: Path) -> None:
    """The cached INSERT … ON CONFLICT DO NOTHING RETURNING counts exactly the rows it added, also when
    one call spans several of SQLAlchemy's multi-row batches."""
    engine = create_engine(db_test_settings(db_url, usage_spill_dir=tmp_path))
    ids = [f"ins-{uuid.uuid4().hex}" for _ in range(2500)]
    rows = [_rec(rid).as_row() for rid in ids]
    async with engine.begin() as conn:
        assert await insert_ignore_duplicates(conn, rows[:1000]) == 1000
    async with engine.begin() as conn:
        assert await insert_ignore_duplicates(conn, rows + rows[:10]) == 1500
    async with engine.begin() as conn:
        assert await insert_ignore_duplicates(conn, []) == 0
    assert await _count(engine, ids) == 2500
    await engine.dispose()


async def test_over_long_labels_are_cut_to_fit_not_lost(db_url: str, tmp_path: Path) -> None:
    """One over-long value used to make Postgres refuse the whole batch (retried, then spilled, for
    ever); a smart route's label outgrew the old 64 characters. Values are now cut to their column."""
    engine = create_engine(db_test_settings(db_url, usage_spill_dir=tmp_path))
    route = "auto → intent=reasoning,confidence=0.93,escalation=used,tier=strong → " + "m" * 400
    long_one, normal = f"long-{uuid.uuid4().hex}", f"ok-{uuid.uuid4().hex}"
    rows = [
        _rec(long_one, route=route, error_type="e" * 300, model_requested="r" * 500).as_row(),
        _rec(normal, route="fake-gpt").as_row(),
    ]
    async with engine.begin() as conn:
        assert await insert_ignore_duplicates(conn, rows) == 2
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                select(UsageLog.route, UsageLog.error_type).where(UsageLog.request_id == long_one)
            )
        ).one()
    assert stored.route.startswith("auto → intent=reasoning") and len(stored.route) == 255
    assert stored.route.endswith("…") and len(stored.error_type) == 64
    assert rows[0]["route"] == route  # the caller's row is not modified
    await engine.dispose()


@pytest.mark.slow
async def test_database_outage_spills_and_replays(private_postgres: PostgresInstance, tmp_path: Path) -> None:
    url = await asyncio.to_thread(create_database, private_postgres.base_url)
    settings = db_test_settings(
        url,
        usage_batch_size=20,
        usage_flush_interval_s=0.05,
        usage_spill_dir=tmp_path,
    )
    await migrate(settings)
    engine = create_engine(settings)
    recorder = UsageRecorder(settings=settings, engine=engine)
    await recorder.start()
    before = [f"a-{i}" for i in range(10)]
    for rid in before:
        recorder.record(_rec(rid))
    await recorder.flush()
    assert await _count(engine, before) == 10

    await asyncio.to_thread(private_postgres.stop)
    during = [f"b-{i}" for i in range(200)]
    for rid in during:
        recorder.record(_rec(rid))
        await asyncio.sleep(0.002)
    for _ in range(100):  # the recorder notices and keeps the sealed segments on disk
        if len(_spilled(tmp_path)) > 1:
            break
        await asyncio.sleep(0.05)
    assert len(_spilled(tmp_path)) > 1, "no segment kept while the database was down"
    assert recorder.dropped == 0

    await asyncio.to_thread(private_postgres.start)
    everything = before + during
    for _ in range(200):
        try:
            if await _count(engine, everything) == len(everything) and not _spilled(tmp_path):
                break
        except Exception:
            pass
        await asyncio.sleep(0.1)
    await recorder.aclose()
    assert await _count(engine, everything) == len(everything)
    assert not _spilled(tmp_path)
    await engine.dispose()


async def test_unreachable_database_spills_on_close_then_replays(tmp_path: Path, sqlite_url: str) -> None:
    dead = db_test_settings(
        "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        usage_spill_dir=tmp_path,
        usage_flush_interval_s=0.05,
    )
    engine = create_engine(dead)
    recorder = UsageRecorder(settings=dead, engine=engine)
    await recorder.start()
    ids = [f"c-{i}" for i in range(50)]
    for rid in ids:
        recorder.record(_rec(rid))
    await recorder.aclose(timeout_s=0.5)
    await engine.dispose()
    assert recorder.dropped == 0
    assert _spilled(tmp_path)

    good = db_test_settings(sqlite_url, usage_spill_dir=tmp_path)
    engine = create_engine(good)
    recorder = UsageRecorder(settings=good, engine=engine)
    assert await recorder.replay_spilled() == 50
    assert await _count(engine, ids) == 50
    await engine.dispose()


async def test_aclose_lets_the_write_in_flight_finish(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graceful stop during a flush: the write is allowed to finish, not cancelled mid-transaction.

    Cancelled, an aiosqlite write kept its lock in its thread; the final flush then waited out
    SQLite's 5 s busy timeout and spilled every record of a SIGTERM (seen in the chaos suite)."""
    import gateway.usage.recorder as recorder_module

    settings = db_test_settings(
        db_url, usage_batch_size=1000, usage_flush_interval_s=0.01, usage_spill_dir=tmp_path
    )
    engine = create_engine(settings)
    recorder = UsageRecorder(settings=settings, engine=engine)
    writing, started, finished = asyncio.Event(), [], []

    async def slow_insert(conn: object, rows: object) -> int:
        started.append(1)
        writing.set()
        await asyncio.sleep(0.3)  # inside the transaction
        inserted = await insert_ignore_duplicates(conn, rows)  # type: ignore[arg-type]
        finished.append(inserted)
        return inserted

    monkeypatch.setattr(recorder_module, "insert_ignore_duplicates", slow_insert)
    await recorder.start()
    ids = [f"inflight-{uuid.uuid4().hex}" for _ in range(12)]
    for rid in ids:
        recorder.record(_rec(rid, status=UsageStatus.INCOMPLETE))
    await asyncio.wait_for(writing.wait(), 5)
    await recorder.aclose(timeout_s=5)
    assert started == [1] and finished == [12]  # the loop's write finished: nothing to redo
    assert await _count(engine, ids) == 12
    assert _spilled(tmp_path) == []
    await engine.dispose()
