"""The durable flows' checkpointer, built from the application's database URL.

- Postgres (``postgresql+asyncpg://…``, production): ``AsyncPostgresSaver`` over a psycopg 3
  connection pool on the same database (the asyncpg URL becomes a libpq conninfo). Its tables are
  created by the library's own ``setup()``, run under an advisory lock so that workers starting
  together never race through the migration list (``setup()`` alone is not safe concurrently: two
  workers read the same version and both insert the next one).
- SQLite file (``sqlite+aiosqlite:///…``, the embedded default): ``AsyncSqliteSaver`` on the same
  file (one process, so no lock is needed).

The SQL of the locked setup lives in ``gateway/db/checkpoint_setup.py``.
- In-memory SQLite (tests): LangGraph's ``InMemorySaver`` — nothing survives the process, so a
  production server refuses it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy.engine import make_url

from gateway.config.durable import DurableConfig
from gateway.db.checkpoint_setup import prepare_sqlite, setup_postgres


class CheckpointerConfigError(RuntimeError):
    """The database URL cannot hold durable checkpoints in this environment."""


def postgres_conninfo(database_url: str) -> str:
    """``postgresql+asyncpg://u:p@h:5432/db?ssl=require`` → ``postgresql://u:p@h:5432/db?sslmode=require``."""
    url = make_url(database_url)
    query = dict(url.query)
    ssl = query.pop("ssl", None)
    if isinstance(ssl, str):
        query["sslmode"] = ssl
    for asyncpg_only in ("prepared_statement_cache_size", "command_timeout", "timeout"):
        query.pop(asyncpg_only, None)
    return url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)


def checkpointer_kind(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return "postgres"
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return "sqlite"
    if url.get_backend_name() == "sqlite":
        return "memory"
    raise CheckpointerConfigError(f"no durable checkpointer for the {url.get_backend_name()!r} database")


@asynccontextmanager
async def open_checkpointer(config: DurableConfig) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The checkpointer for ``config.database_url``, its tables set up; closed on exit."""
    kind = checkpointer_kind(config.database_url)
    if kind == "memory":
        if config.production:
            raise CheckpointerConfigError(
                "durable flows need a database that outlives the process: an in-memory checkpointer "
                "is refused in production (set GATEWAY_DATABASE_URL to Postgres)"
            )
        yield InMemorySaver()
        return
    if kind == "sqlite":
        async with _sqlite(config) as saver:
            yield saver
        return
    async with _postgres(config) as saver:
        yield saver


@asynccontextmanager
async def open_checkpointers(config: DurableConfig) -> AsyncIterator[list[BaseCheckpointSaver[Any]]]:
    """Like :func:`open_checkpointer`, as ``config.checkpoint_shards`` savers on one Postgres pool
    (one saver elsewhere). ``AsyncPostgresSaver`` runs every operation of an instance behind one
    ``asyncio.Lock``, pool or not, so a single saver lets a process write one checkpoint at a time
    whatever the number of runs in flight; each run uses one saver (chosen by its id), so the runs
    of a process write in parallel while each run's own writes stay in order."""
    if checkpointer_kind(config.database_url) != "postgres":
        async with open_checkpointer(config) as saver:
            yield [saver]
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with _postgres(config) as first:
        assert isinstance(first, AsyncPostgresSaver)
        yield [first, *(AsyncPostgresSaver(first.conn) for _ in range(config.checkpoint_shards - 1))]


@asynccontextmanager
async def _sqlite(config: DurableConfig) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = make_url(config.database_url).database
    async with aiosqlite.connect(str(path), timeout=30) as conn:
        await prepare_sqlite(conn)
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        yield saver


@asynccontextmanager
async def _postgres(config: DurableConfig) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        postgres_conninfo(config.database_url),
        min_size=1,
        max_size=config.pool_size,
        kwargs={
            "autocommit": True,
            "prepare_threshold": 0,
            "row_factory": dict_row,
            **({} if config.synchronous_commit else {"options": "-c synchronous_commit=off"}),
        },
        open=False,
        name="prism-durable",
    )
    await pool.open(wait=True, timeout=config.connect_timeout_s)
    try:
        saver = AsyncPostgresSaver(pool)
        await setup_postgres(saver, pool, timeout_s=config.setup_timeout_s)
        yield saver
    finally:
        await pool.close()
