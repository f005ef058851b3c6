"""A client that leaves mid-stream cancels the upstream call and still gets its usage record."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from pathlib import Path

import httpx

from tests.support.gateway_proc import running_gateway

CONFIG = """
models:
  slow-stream:
    provider: mock
    tier: cheap
    mock: {token_delay_ms: 100, answer_words: 200}
"""


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_disconnect_cancels_the_upstream_stream(tmp_path: Path) -> None:
    with running_gateway(tmp_path, config=CONFIG) as gateway:
        body = {
            "model": "slow-stream",
            "stream": True,
            "messages": [{"role": "user", "content": "talk a lot"}],
        }
        started = time.monotonic()
        with httpx.stream(
            "POST", f"{gateway.openai_base_url}/chat/completions", json=body, timeout=10
        ) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
            assert next(lines) == ""
        # 200 words at 100 ms each would take 20 s: the stream must be torn down well before that.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            metrics = httpx.get(f"{gateway.url}/metrics").text
            if _metric(metrics, "prism_open_streams") == 0 and "stream_error" not in metrics:
                break
            time.sleep(0.1)
        assert _metric(metrics, "prism_open_streams") == 0
        assert time.monotonic() - started < 6
        # Exactly one usage record: incomplete, with the few tokens actually relayed.
        database = tmp_path / f"prism-{gateway.port}.db"
        rows: list[tuple[str, int]] = []
        deadline = time.monotonic() + 5
        while not rows and time.monotonic() < deadline:
            time.sleep(0.2)
            with contextlib.closing(sqlite3.connect(database)) as connection:
                rows = connection.execute("SELECT status, completion_tokens FROM usage_logs").fetchall()
        assert len(rows) == 1
        status, tokens = rows[0]
        assert status == "incomplete"
        assert 0 <= tokens < 100
