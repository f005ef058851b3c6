"""Database fixtures for integration tests: a fresh, migrated Postgres database per test session
(created and dropped here, never shared) and a migrated SQLite file per test.

Use from another test module or conftest::

    from tests.integration.db_fixtures import *  # noqa: F403  (pg_url, sqlite_url, db_url, db_settings)

``db_url`` is parametrised over both backends. Postgres is expected at ``PRISM_TEST_PG``
(default ``postgresql+asyncpg://postgres@127.0.0.1:5432``); tests using it are skipped when it is
unreachable. ``PostgresInstance`` starts a private server (initdb/pg_ctl as the ``postgres`` user,
spare port, temp dir) for tests that stop and restart the database.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from gateway.config.settings import Settings, get_settings
from gateway.db.migrate import migrate
from tests.support.ports import candidate_port

PG_BASE = os.environ.get("PRISM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _admin(sql: str, base: str = PG_BASE) -> None:
    conn = await asyncpg.connect(_dsn(base) + "/postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(base: str = PG_BASE) -> str:
    """Create a uniquely named database and return its SQLAlchemy URL."""
    name = f"prism_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"', base))
    return f"{base}/{name}"


def drop_database(url: str, base: str = PG_BASE) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', base))


def postgres_available(base: str = PG_BASE) -> bool:
    try:
        asyncio.run(_admin("SELECT 1", base))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def db_test_settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": url,
        "env": "test",
        "database_migrate_on_start": False,
        "api_key_cache_ttl_s": 0.0,
    }
    values.update(overrides)
    return get_settings(**values)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not postgres_available():
        pytest.skip("Postgres is not reachable")
    url = create_database()
    try:
        asyncio.run(migrate(db_test_settings(url)))
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'prism.db'}"
    asyncio.run(migrate(db_test_settings(url)))
    return url


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    fixture = "pg_url" if request.param == "postgres" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


class PostgresInstance:
    """A private Postgres server for fault-injection tests (stop/start at will)."""

    def __init__(self) -> None:
        self.port = candidate_port()
        self._started = False
        self.dir = Path(tempfile.mkdtemp(prefix="prism-pg-"))
        self.data = self.dir / "data"
        self._bin = self._find_bin()
        user = pwd.getpwnam("postgres")
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run([str(self._bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"])

    @staticmethod
    def _find_bin() -> Path:
        for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (candidate / "pg_ctl").exists():
                return candidate
        found = shutil.which("pg_ctl")
        if not found:
            raise RuntimeError("pg_ctl not found")
        return Path(found).resolve().parent

    def _run(self, args: list[str]) -> None:
        cmd = args if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    @property
    def base_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        """The first start moves to a fresh port while its port is taken (``pg_ctl -w`` fails: our
        postmaster could not bind; it succeeds only once our own postmaster is ready, so another
        server on the port cannot pass for it). A restart keeps the port: clients hold the URL."""
        for attempt in range(1 if self._started else 5):
            try:
                self._start_once()
            except subprocess.CalledProcessError:
                if self._started or attempt == 4:
                    raise
                self.port = candidate_port()
                continue
            self._started = True
            return

    def _start_once(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                opts,
                "-w",
                "-t",
                "30",
                "-l",
                str(self.dir / "log"),
                "start",
            ]
        )
        deadline = time.monotonic() + 15
        while not postgres_available(self.base_url):
            if time.monotonic() > deadline:
                raise RuntimeError("private Postgres did not come up")
            time.sleep(0.1)

    def stop(self) -> None:
        self._run([str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PostgresInstance]:
    try:
        instance = PostgresInstance()
    except (RuntimeError, KeyError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot start a private Postgres: {exc}")
    instance.start()
    try:
        yield instance
    finally:
        instance.destroy()
