"""Durable pipelines for the tests: steps whose executions and side effects are counted in Postgres.

``durable_attempts`` gets one row per execution of a step (so a repeated step shows twice);
``durable_effects`` one row per idempotency key (``StepContext.key``), inserted ``ON CONFLICT DO
NOTHING``: the side effect a real step would make exactly once. A step named in ``hang_at`` waits
forever on the run's first claim (its worker is killed there) and passes on a takeover.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from gateway.agent.durable import DurableGraph, Step, StepContext, build_pipeline
from gateway.agent.durable.pipeline import DEFAULT_RETRY

TABLES = """
CREATE TABLE IF NOT EXISTS durable_attempts (run_id TEXT, step TEXT, claim INT, worker TEXT);
CREATE TABLE IF NOT EXISTS durable_effects (key TEXT PRIMARY KEY);
"""


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def create_tables(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(TABLES)
    finally:
        await conn.close()


def counted_pipeline(
    url: str, *, steps: int = 5, hang_at: str | None = None, worker: str = "", name: str = "counted"
) -> DurableGraph:
    dsn = asyncpg_dsn(url)

    async def effect(value: Any, step: StepContext) -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO durable_attempts VALUES ($1, $2, $3, $4)",
                step.run.run_id,
                step.step,
                step.run.claims,
                worker,
            )
            await conn.execute("INSERT INTO durable_effects VALUES ($1) ON CONFLICT DO NOTHING", step.key)
        finally:
            await conn.close()
        step.emit({"effect": step.key})
        if step.step == hang_at and step.run.claims == 1:
            await asyncio.Event().wait()  # the worker is SIGKILLed here
        return [*value, step.step]

    return build_pipeline(name, [Step(f"s{i}", effect, retry=DEFAULT_RETRY) for i in range(1, steps + 1)])
