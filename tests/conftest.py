"""Shared fixtures: the real gateway under uvicorn, driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
