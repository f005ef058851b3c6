"""The usage ledger against faults it was not designed around: a worker SIGKILLed with records
recorded but not written, an orphan replayed twice (half inserted by a worker that died replaying
it), a live worker's segments left alone, poison records quarantined one by one while the records
around them land."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.db.engine import create_engine
from gateway.db.models import UsageLog, UsageQuarantine
from gateway.db.repositories.usage import insert_ignore_duplicates
from gateway.observability.metrics import USAGE_QUARANTINED
from gateway.usage import recorder as recorder_module
from gateway.usage.record import UsageRecord
from gateway.usage.recorder import UsageRecorder
from gateway.usage.segments import SegmentLog, decode_file
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.db_fixtures import db_test_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _rec(request_id: str, **kw: object) -> UsageRecord:
    values: dict[str, object] = {"user_id": "u1", "model_served": "m", "prompt_tokens": 3, **kw}
    return UsageRecord(request_id=request_id, **values)  # type: ignore[arg-type]


async def _stored(engine: object, model: type = UsageLog) -> list[str]:
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(engine, AsyncEngine)
    async with engine.connect() as conn:
        result = await conn.execute(select(model.request_id))  # type: ignore[attr-defined]
        return [row[0] for row in result]


_CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from gateway.db.engine import create_engine
    from gateway.config.settings import get_settings
    from gateway.usage.record import UsageRecord
    from gateway.usage.recorder import UsageRecorder

    async def main() -> None:
        # The database is unreachable: nothing is written, everything waits in this worker's segments.
        settings = get_settings(
            env="test", database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
            usage_spill_dir=sys.argv[1], usage_flush_interval_s=0.02, usage_batch_size=7,
        )
        recorder = UsageRecorder(settings=settings, engine=create_engine(settings))
        await recorder.start()
        for i in range(int(sys.argv[2])):
            recorder.record(UsageRecord(request_id=f"killed-{i}", model_served="m", prompt_tokens=i))
            if i % 10 == 0:
                await asyncio.sleep(0.01)  # let the loop seal segments and fail to write them
        print("recorded", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_records_of_a_sigkilled_worker_are_replayed_by_the_next(tmp_path: Path, db_url: str) -> None:
    spill = tmp_path / "ledger"
    child = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", _CHILD, str(spill), "250"],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    try:

        def wait_for_recorded() -> None:
            assert child.stdout is not None
            for line in child.stdout:  # log lines come first
                if line.strip() == b"recorded":
                    return
            raise AssertionError("the child exited before recording")

        await asyncio.wait_for(asyncio.to_thread(wait_for_recorded), 30)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert len(list(spill.glob("*.seg"))) > 1  # sealed-and-failed segments plus the active one

    settings = db_test_settings(db_url, usage_spill_dir=spill)
    engine = create_engine(settings)
    recorder = UsageRecorder(settings=settings, engine=engine)
    try:
        assert await recorder.replay_spilled() == 250
        stored = await _stored(engine)
        assert {f"killed-{i}" for i in range(250)} <= set(stored)
        assert list(spill.glob("*.seg")) == []
    finally:
        await engine.dispose()


async def test_half_replayed_orphan_is_finished_without_duplicates(tmp_path: Path, sqlite_url: str) -> None:
    """A worker that died while replaying a dead worker's file left half of it inserted."""
    spill = tmp_path / "ledger"
    dead = SegmentLog(spill)
    for i in range(40):
        dead.append(_rec(f"orphan-{i}").as_row())
    dead.release(dead.seal())  # type: ignore[arg-type]  # the owner dies: file stays, lock goes
    settings = db_test_settings(sqlite_url, usage_spill_dir=spill)
    engine = create_engine(settings)
    rows, _ = decode_file(next(spill.glob("*.seg")))
    async with engine.begin() as conn:
        await insert_ignore_duplicates(conn, [recorder_module._from_disk(r) for r in rows[:17]])
    recorder = UsageRecorder(settings=settings, engine=engine)
    try:
        assert await recorder.replay_spilled() == 40
        stored = [rid for rid in await _stored(engine) if rid.startswith("orphan-")]
        assert len(stored) == len(set(stored)) == 40
    finally:
        await engine.dispose()


async def test_a_live_workers_segments_are_not_claimed(tmp_path: Path, sqlite_url: str) -> None:
    spill = tmp_path / "ledger"
    live = SegmentLog(spill)
    live.append(_rec("live-1").as_row())
    sealed = live.seal()
    assert sealed is not None
    live.append(_rec("live-2").as_row())  # a new active segment, also held
    settings = db_test_settings(sqlite_url, usage_spill_dir=spill)
    engine = create_engine(settings)
    other = UsageRecorder(settings=settings, engine=engine)
    try:
        assert await other.replay_spilled() == 0
        assert len(list(spill.glob("*.seg"))) == 2
        live.release(sealed)  # the owner dies
        live.close()
        assert await other.replay_spilled() == 2
        assert sorted(await _stored(engine)) == ["live-1", "live-2"]
    finally:
        await engine.dispose()


async def test_poison_records_are_quarantined_and_never_block_the_rest(db_url: str, tmp_path: Path) -> None:
    settings = db_test_settings(
        db_url, usage_batch_size=10, usage_flush_interval_s=0.01, usage_spill_dir=tmp_path
    )
    engine = create_engine(settings)
    recorder = UsageRecorder(settings=settings, engine=engine)
    before = USAGE_QUARANTINED.labels(reason="unstorable_text")._value.get()
    await recorder.start()
    good = [f"good-{uuid.uuid4().hex}" for _ in range(30)]
    poison = {
        "nul": _rec("poison-nul", model_requested="mock\x00fast"),
        "surrogate": _rec("poison-surrogate", error_type="x\ud800y"),
        "overflow": _rec("poison-overflow", prompt_tokens=2**40),
        "nan": _rec("poison-nan", cost_usd=float("nan")),
    }
    for i, rid in enumerate(good):
        recorder.record(_rec(rid))
        if i % 10 == 5:
            recorder.record(list(poison.values())[i // 10])
    recorder.record(poison["nan"])
    await recorder.flush()
    await recorder.aclose()
    try:
        stored = await _stored(engine)
        assert set(good) <= set(stored) and not {r.request_id for r in poison.values()} & set(stored)
        assert {r.request_id for r in poison.values()} <= set(await _stored(engine, UsageQuarantine))
        async with engine.connect() as conn:
            reasons = dict(
                (await conn.execute(select(UsageQuarantine.request_id, UsageQuarantine.reason))).all()
            )
            payload = (
                await conn.execute(
                    select(UsageQuarantine.payload).where(UsageQuarantine.request_id == "poison-nul")
                )
            ).scalar_one()
        assert reasons["poison-nul"] == reasons["poison-surrogate"] == "unstorable_text"
        assert reasons["poison-overflow"] == "integer_out_of_range"
        assert reasons["poison-nan"] == "non_finite_number"
        assert "mock\\u0000fast" in payload  # kept, escaped, for the operator
        assert USAGE_QUARANTINED.labels(reason="unstorable_text")._value.get() - before == 2
        assert not any(tmp_path.glob("*.seg"))  # noqa: ASYNC240
    finally:
        await engine.dispose()


async def test_a_batch_the_database_refuses_is_split_row_by_row(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation switched off: Postgres itself refuses the NUL (the failure seen in production);
    the batch is retried row by row, the bad row quarantined, the others written."""
    monkeypatch.setattr(recorder_module, "invalid_reason", lambda row: None)
    settings = db_test_settings(pg_url, usage_batch_size=50, usage_spill_dir=tmp_path)
    engine = create_engine(settings)
    recorder = UsageRecorder(settings=settings, engine=engine)
    tag = uuid.uuid4().hex[:8]
    good = [f"refused-ok-{tag}-{i}" for i in range(20)]
    for rid in good[:10]:
        recorder.record(_rec(rid))
    recorder.record(_rec(f"refused-bad-{tag}", model_requested="bad\x00model"))
    for rid in good[10:]:
        recorder.record(_rec(rid))
    await recorder.flush()
    try:
        async with engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(func.count()).where(UsageLog.request_id.like(f"refused-ok-{tag}-%"))
                )
            ).scalar_one()
            reason = (
                await conn.execute(
                    select(UsageQuarantine.reason).where(UsageQuarantine.request_id == f"refused-bad-{tag}")
                )
            ).scalar_one()
        assert stored == 20
        assert reason == "database_refused"
    finally:
        await recorder.aclose()
        await engine.dispose()
