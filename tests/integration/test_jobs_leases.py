"""The job lease on both databases: one claim wins, a stale holder can neither renew nor finish,
an expired lease is taken over, a cancelled job stops its holder, and a job whose pipeline cannot
be built fails at once (no retry loop)."""

from __future__ import annotations

import uuid
from pathlib import Path

from gateway.agent.durable.checkpointer import open_checkpointers
from gateway.config.durable import DurableConfig
from gateway.db.engine import create_engine
from gateway.db.repositories import jobs
from gateway.jobs.executor import JobExecutor
from gateway.jobs.registry import JobType, PipelineContext
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.db_fixtures import db_test_settings


async def _job(engine: object, job_type: str = "ocr") -> str:
    job_id = uuid.uuid4().hex
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        await jobs.create(conn, {"id": job_id, "type": job_type, "options": {}, "user_id": "u1"})
    return job_id


async def test_one_claim_wins_and_a_stale_holder_cannot_finish(db_url: str) -> None:
    engine = create_engine(db_test_settings(db_url))
    try:
        job_id = await _job(engine)
        async with engine.begin() as conn:
            first = await jobs.claim(conn, job_id=job_id, owner="a", lease_s=-1.0)  # expires at once
            assert first is not None and first.attempts == 1
            second = await jobs.claim(conn, job_id=job_id, owner="b", lease_s=60.0)
            assert second is not None and second.token == first.token + 1
            assert await jobs.claim(conn, job_id=job_id, owner="c", lease_s=60.0) is None  # b holds it
            assert not await jobs.renew(conn, lease=first, lease_s=60.0)
            assert not await jobs.finish(conn, lease=first, status="succeeded", result={"x": 1})
            assert await jobs.finish(conn, lease=second, status="succeeded", result={"x": 2})
            assert not await jobs.finish(conn, lease=second, status="succeeded", result={"x": 3})
            row = await jobs.get(conn, job_id)
        assert row.status == "succeeded" and row.result == {"x": 2} and row.attempts == 2
    finally:
        await engine.dispose()


async def test_cancel_stops_renewal_and_a_broken_pipeline_fails_the_job(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = db_test_settings(sqlite_url)
    engine = create_engine(settings)
    try:
        job_id = await _job(engine)
        async with engine.begin() as conn:
            lease = await jobs.claim(conn, job_id=job_id, owner="a", lease_s=60.0)
            assert lease is not None
            assert await jobs.cancel(conn, job_id=job_id)
            assert not await jobs.renew(conn, lease=lease, lease_s=60.0)
        broken = await _job(engine, "broken")
        async with open_checkpointers(DurableConfig.from_settings(settings)) as savers:
            executor = JobExecutor(
                engine=engine,
                checkpointer=savers[0],
                types={"broken": JobType("broken", "gateway.no_such_module:factory", "file")},
                context=PipelineContext(targets={}, model="mock-fast", settings=settings),
                worker_id="w",
            )
            assert await executor.run(broken) == "failed"
            assert await executor.run(broken) == "skipped"  # a redelivered message finds it finished
        async with engine.connect() as conn:
            row = await jobs.get(conn, broken)
        assert row.status == "failed" and "cannot be built" in row.error["message"]
    finally:
        await engine.dispose()
