"""Workers that start together on a fresh SQLite file migrate one after the other (a race made one
worker fail with "table users already exists" and uvicorn stop the whole server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import asyncio, sys
from gateway.db.migrate import migrate
from gateway.config.settings import get_settings
asyncio.run(migrate(get_settings(env="test", database_url=f"sqlite+aiosqlite:///{sys.argv[1]}")))
"""


def test_processes_migrating_one_fresh_sqlite_file_all_succeed(tmp_path: Path) -> None:
    for round_ in range(3):
        database = tmp_path / f"race-{round_}.db"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", SCRIPT, str(database)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in processes]
        failed = [out[-2000:] for p, out in zip(processes, outputs, strict=True) if p.returncode != 0]
        assert not failed, failed[0]
