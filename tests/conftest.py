"""Shared fixtures: the real gateway under uvicorn, driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.db_fixtures import create_database, drop_database, postgres_available
from tests.support.gateway_proc import GatewayProcess, start_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway with the shipped default config (mock models), shared by read-only tests."""
    process = start_gateway(tmp_path_factory.mktemp("gateway"))
    yield process
    process.stop()


@pytest.fixture
def gateway_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh Postgres database for one test module (dropped after it); skips without Postgres."""
    if not postgres_available():
        pytest.skip("Postgres is not reachable")
    url = create_database()
    yield url
    drop_database(url)
