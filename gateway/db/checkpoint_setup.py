"""The durable checkpointer's SQL: on Postgres, the library's own ``setup()`` run once per database
even when workers start together; on SQLite, the embedded connection's pragmas
(``gateway/agent/durable/checkpointer.py`` opens the connections).

The checkpointer's schema belongs to ``langgraph-checkpoint-postgres`` (its ``MIGRATIONS`` list, its
``checkpoint_migrations`` table) and moves with its version, so it is not an Alembic revision.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

SETUP_LOCK_ID = 0x70726973646B  # "prisdk": one advisory lock for every worker setting up a database


async def setup_postgres(saver: Any, pool: Any, *, timeout_s: float) -> bool:
    """Run the saver's migrations unless they are all applied; returns whether it ran them.

    The lock is taken with ``pg_try_advisory_lock`` in a polling loop, not the blocking
    ``pg_advisory_lock``: the migrations include ``CREATE INDEX CONCURRENTLY``, which waits for every
    transaction older than it — a worker blocked inside ``pg_advisory_lock`` would be one, and the two
    would deadlock. Between polls a waiting worker holds no transaction open.
    """
    if await _migrated(pool, len(saver.MIGRATIONS) - 1):
        return False
    deadline = time.monotonic() + timeout_s
    async with pool.connection() as lock_conn:
        while True:
            row = await (
                await lock_conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (SETUP_LOCK_ID,))
            ).fetchone()
            if row["ok"]:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("another worker held the checkpointer's setup lock too long")
            await asyncio.sleep(0.05)
        try:
            if await _migrated(pool, len(saver.MIGRATIONS) - 1):
                return False
            await saver.setup()
            return True
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK_ID,))


async def _migrated(pool: Any, latest: int) -> bool:
    async with pool.connection() as conn:
        row = await (
            await conn.execute("SELECT to_regclass('checkpoint_migrations') IS NOT NULL AS present")
        ).fetchone()
        if not row["present"]:
            return False
        row = await (await conn.execute("SELECT max(v) AS v FROM checkpoint_migrations")).fetchone()
        return row["v"] is not None and int(row["v"]) >= latest


async def prepare_sqlite(conn: Any) -> None:
    """The embedded checkpointer's aiosqlite connection: WAL (the gateway's engine shares the file)
    and a busy timeout instead of an immediate ``database is locked``."""
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA busy_timeout=5000")
