"""Feedback and experiment runs on Postgres and SQLite (issues #17, #26): migration 0007 removes
duplicate ratings left by earlier versions (the newest stays), a second rating of the same request
by the same user updates the first, and reports filter on a run's time range."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.db.engine import create_engine
from gateway.db.migrate import migrate
from gateway.db.repositories import experiments as repo
from tests.integration.db_fixtures import create_database, db_test_settings, drop_database, postgres_available

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"
        return
    if not postgres_available():
        pytest.skip("Postgres is not reachable")
    created = create_database()
    try:
        yield created
    finally:
        drop_database(created)


async def _dedupe_then_upsert(url: str) -> None:
    settings = db_test_settings(url)
    await migrate(settings, revision="0006_ledger")
    engine = create_engine(settings)
    try:
        insert = text(
            "INSERT INTO feedback (request_id, user_id, score, thumb, created_at) VALUES (:r, :u, :s, :t, :c)"
        )
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            for i, (request_id, user, score) in enumerate(
                [
                    ("r1", "alice", 1.0),
                    ("r1", "alice", 5.0),
                    ("r1", "bob", 2.0),
                    ("r2", None, 3.0),
                    ("r2", None, 4.0),
                ]
            ):
                await conn.execute(
                    insert,
                    {"r": request_id, "u": user, "s": score, "t": None, "c": now + timedelta(seconds=i)},
                )
        await migrate(settings)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT request_id, user_id, score FROM feedback ORDER BY id"))
            ).all()
        assert [tuple(r) for r in rows] == [("r1", "alice", 5.0), ("r1", "bob", 2.0), ("r2", None, 4.0)]

        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session, session.begin():
            row, created = await repo.upsert_feedback(
                session, request_id="r1", user_id="alice", score=1.0, thumb="down", experiment="e", arm="a"
            )
            assert not created and row.score == 1.0 and row.thumb == "down" and row.updated_at is not None
            _, created = await repo.upsert_feedback(
                session, request_id="r2", user_id=None, score=2.0, thumb=None
            )
            assert not created
            _, created = await repo.upsert_feedback(
                session, request_id="r3", user_id="carol", score=5.0, thumb=None
            )
            assert created
        async with engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM feedback"))).scalar_one()
            assert count == 4
            with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
                await conn.execute(
                    insert, {"r": "r1", "u": "alice", "s": 2.0, "t": None, "c": datetime.now(UTC)}
                )

        async with sessions() as session, session.begin():
            first = await repo.create_run(session, experiment="e", started_by=None, reason="first")
        await asyncio.sleep(0.01)
        async with sessions() as session, session.begin():
            second = await repo.create_run(session, experiment="e", started_by=None, reason="second")
            runs = await repo.list_runs(session, "e")
            assert [r.id for r in runs] == [second.id, first.id]
            assert await repo.run_end(session, first) == second.started_at
            assert await repo.run_end(session, second) is None
            assert await repo.get_run(session, "other", first.id) is None
    finally:
        await engine.dispose()


def test_feedback_dedupe_upsert_and_runs(url: str) -> None:
    asyncio.run(_dedupe_then_upsert(url))
