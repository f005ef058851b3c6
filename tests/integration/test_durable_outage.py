"""A durable run outlives a Postgres restart: the database (a private server) stops while a step is
under way; the run is not failed but left to its lease, and once the database is back it is
continued from its last checkpoint — the interrupted step runs again, its keyed side effect once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from gateway.agent.durable import Step, StepContext, build_pipeline, open_runtime
from gateway.config.settings import get_settings
from gateway.db.migrate import migrate
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.db_fixtures import PostgresInstance, create_database
from tests.support.durable_graphs import asyncpg_dsn, create_tables
from tests.support.waiting import eventually


async def test_a_run_outlives_a_database_restart(private_postgres: PostgresInstance) -> None:
    url = await asyncio.to_thread(create_database, private_postgres.base_url)
    settings = get_settings(
        database_url=url,
        env="test",
        durable_worker_id="outage",
        durable_lease_s=1.0,
        durable_heartbeat_s=0.25,
        durable_recovery_scan_s=0.2,
    )
    await migrate(settings)
    await create_tables(url)
    gate = asyncio.Event()

    async def record(value: Any, step: StepContext) -> Any:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(
                "INSERT INTO durable_attempts VALUES ($1, $2, $3, 'outage')",
                step.run.run_id,
                step.step,
                step.run.claims,
            )
            await conn.execute("INSERT INTO durable_effects VALUES ($1) ON CONFLICT DO NOTHING", step.key)
        finally:
            await conn.close()
        if step.step == "s2" and step.run.claims == 1:
            await gate.wait()  # the database stops meanwhile
        return [*value, step.step]

    async def count(sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    graph = build_pipeline("outage", [Step(f"s{i}", record, retry=None) for i in (1, 2, 3)])
    async with open_runtime(settings, [graph]) as runtime:
        handle = await runtime.submit("outage", [])
        await eventually(
            lambda: count("SELECT 1 FROM durable_attempts WHERE run_id = $1 AND step = 's2'", handle.run_id),
            "the run is inside s2",
        )
        await asyncio.to_thread(private_postgres.stop)
        gate.set()
        outcome = await handle.outcome()
        assert outcome.status in ("abandoned", "lease_lost"), outcome
        await asyncio.to_thread(private_postgres.start)

        async def finished() -> Any:
            try:
                record_ = await runtime.status(handle.run_id)
            except Exception:  # the engine's pool reconnecting
                return None
            return record_ if record_ is not None and record_.finished_at is not None else None

        done = await eventually(finished, "the run finished after the restart", within_s=60)
    assert done.status == "succeeded", done.error
    assert done.result["last"] == ["s1", "s2", "s3"]
    rows = await count(
        "SELECT step, count(*) AS n FROM durable_attempts WHERE run_id = $1 GROUP BY step", handle.run_id
    )
    assert {row["step"]: row["n"] for row in rows} == {"s1": 1, "s2": 2, "s3": 1}
    effects = await count("SELECT key FROM durable_effects WHERE key LIKE $1", f"{handle.run_id}:%")
    assert len(effects) == 3
