"""Run Alembic migrations programmatically (start-up, tests, ``python -m gateway.db.migrate``)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from alembic import command
from gateway.config.settings import Settings, get_settings
from gateway.db.engine import create_engine

_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(settings: Settings) -> Config:
    cfg = Config(str(_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(_ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return cfg


def _run(connection: Connection, cfg: Config, action: str, revision: str) -> None:
    cfg.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def migrate(settings: Settings, *, revision: str = "head") -> None:
    """``alembic upgrade <revision>`` on the configured database, inside the running event loop."""
    await _apply(settings, "upgrade", revision)


async def downgrade(settings: Settings, *, revision: str = "base") -> None:
    await _apply(settings, "downgrade", revision)


_LOCK_ID = 0x707269736D  # "prism": one advisory lock for every migrating process of a database


async def _apply(settings: Settings, action: str, revision: str) -> None:
    """One transaction; on Postgres under a transaction-scoped advisory lock, so processes that start
    together (uvicorn workers, pods beside the migration Job) migrate one after the other — the
    later ones find the schema at ``revision`` and do nothing. Without it two workers on a fresh
    database both created ``alembic_version`` and one failed to start."""
    cfg = alembic_config(settings)
    engine = create_engine(settings)
    try:
        sqlite_file = engine.url.database if engine.dialect.name == "sqlite" else None
        async with _sqlite_file_lock(sqlite_file), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            await conn.run_sync(_run, cfg, action, revision)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _sqlite_file_lock(database: str | None) -> AsyncIterator[None]:
    """SQLite has no advisory lock: workers sharing a database file take an ``flock`` on a file
    beside it, so the second finds the schema migrated instead of racing ("table users already
    exists", one worker failing and uvicorn stopping the server)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(migrate(get_settings()))
