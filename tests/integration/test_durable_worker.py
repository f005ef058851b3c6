"""The durable worker process (``python -m gateway.workers.durable``): at start it finds a run
whose worker died and finishes it — the ``summarize`` pipeline through the mock provider — and on
SIGTERM it exits cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import httpx

from gateway.config.settings import get_settings
from gateway.db.engine import create_engine
from gateway.db.repositories import durable_runs as runs
from tests.integration.db_fixtures import *  # noqa: F403
from tests.support.ports import candidate_port
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


async def test_the_worker_process_finishes_an_orphaned_summarize_run(pg_url: str) -> None:
    run_id = f"sum-{uuid.uuid4().hex[:8]}"
    port = candidate_port()
    text = "\n\n".join(f"Paragraph {i}: " + "words " * 40 for i in range(30))
    engine = create_engine(get_settings(database_url=pg_url, env="test"))
    try:
        async with engine.begin() as conn:
            await runs.create(
                conn, run_id=run_id, graph="summarize", input={"text": text}, owner="dead", lease_s=-1.0
            )
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.workers.durable",
            "--model",
            "mock-fast",
            "--metrics-port",
            str(port),
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "GATEWAY_ENV": "test",
                "GATEWAY_DATABASE_URL": pg_url,
                "GATEWAY_DATABASE_MIGRATE_ON_START": "false",
                "GATEWAY_CONFIG": str(ROOT / "config" / "prism.yaml"),
                "GATEWAY_DURABLE_RECOVERY_SCAN_S": "0.2",
            },
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:

            async def finished() -> runs.RunRecord | None:
                async with engine.connect() as conn:
                    record = await runs.get(conn, run_id)
                return record if record is not None and record.finished_at is not None else None

            record = await eventually(finished, "the worker finished the orphaned run", within_s=150)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                scraped = (await http.get("/metrics")).text
            assert 'prism_durable_runs_total{event="resumed",graph="summarize"} 1.0' in scraped
            assert 'prism_durable_runs_total{event="succeeded",graph="summarize"} 1.0' in scraped
            assert (
                'prism_durable_step_duration_seconds_count{graph="summarize",node="map",outcome="ok"} 1.0'
                in scraped
            )
            worker.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(worker.communicate(), timeout=30)
            assert worker.returncode == 0, stderr.decode()[-2000:]
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        assert record.status == "succeeded", record.error
        assert record.claims == 2
        # 30 paragraphs of ~255 characters: 2 chunks of English (6000 characters at most)
        assert len(record.result["outputs"]["prepare"]["chunks"]) == 2
        assert len(record.result["outputs"]["map"]["partial"]) == 2
        last = record.result["last"]
        assert last["summary"] and last["chunks"] == 2 and last["calls"] == 3  # 2 maps + 1 reduce
        # the calls went through the gateway's request path: one usage record each (service principal)
        async with engine.connect() as conn:
            rows = (
                await conn.exec_driver_sql(
                    "SELECT model_requested, status FROM usage_logs"
                    " WHERE request_id LIKE 'pipe-%' AND user_id IS NULL AND model_requested = 'mock-fast'"
                )
            ).all()
        assert [tuple(row) for row in rows] == [("mock-fast", "ok")] * 3
    finally:
        await engine.dispose()
