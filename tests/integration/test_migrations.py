"""Alembic: upgrade head and downgrade base on a fresh Postgres database and on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect

from gateway.db.engine import create_engine
from gateway.db.migrate import downgrade, migrate
from gateway.db.models import Base
from tests.integration.db_fixtures import create_database, db_test_settings, drop_database, postgres_available

pytestmark = pytest.mark.integration


async def _tables(url: str) -> set[str]:
    engine = create_engine(db_test_settings(url))
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _roundtrip(url: str) -> None:
    settings = db_test_settings(url)
    await migrate(settings)
    await migrate(settings)  # idempotent
    tables = await _tables(url)
    assert set(Base.metadata.tables) <= tables
    await downgrade(settings, revision="base")
    assert await _tables(url) <= {"alembic_version"}
    await migrate(settings)
    assert set(Base.metadata.tables) <= await _tables(url)


def test_postgres_upgrade_downgrade() -> None:
    if not postgres_available():
        pytest.skip("Postgres is not reachable")
    url = create_database()
    try:
        asyncio.run(_roundtrip(url))
    finally:
        drop_database(url)


def test_sqlite_upgrade_downgrade(tmp_path: Path) -> None:
    asyncio.run(_roundtrip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"))


def test_processes_starting_together_migrate_one_after_the_other() -> None:
    """Workers started together on a fresh database: each migrates at start-up; one creates the schema,
    the others wait on the advisory lock and find it at head (before: duplicate ``alembic_version``)."""
    if not postgres_available():
        pytest.skip("Postgres is not reachable")
    url = create_database()

    async def together() -> None:
        settings = db_test_settings(url)
        await asyncio.gather(*(migrate(settings) for _ in range(4)))
        assert set(Base.metadata.tables) <= await _tables(url)

    try:
        asyncio.run(together())
    finally:
        drop_database(url)
