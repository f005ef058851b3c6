"""Run Alembic migrations programmatically (start-up, tests, ``python -m gateway.db.migrate``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.config import Config
from sqlalchemy.engine import Connection

from alembic import command
from gateway.db.engine import create_engine
from gateway.settings import Settings, get_settings

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


async def _apply(settings: Settings, action: str, revision: str) -> None:
    cfg = alembic_config(settings)
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run, cfg, action, revision)
    finally:
        await engine.dispose()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(migrate(get_settings()))
