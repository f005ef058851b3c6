"""Evaluation runs on the jobs queue (issue #24): with ``GATEWAY_JOBS_BROKER_URL`` set, a run is an
``evaluation`` job on a real RabbitMQ executed by a real Celery worker process (``make worker``'s
command) on Postgres; a worker SIGKILLed mid-run (its whole process group) has the run finished by
the next worker, resuming after the stored pairs: every pair stored once, at most the calls in
flight made again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.fakes import FakeUpstream, running_fake_openai
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.test_jobs_celery import BROKER, _rabbit_up, _sync_url, start_worker
from tests.support.gateway_proc import running_gateway
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not _rabbit_up(), reason="RabbitMQ is not running on 127.0.0.1:5672"),
]

ADMIN_EMAIL = "eval-jobs-admin@example.com"
ADMIN_PASSWORD = "Eval-jobs-passphrase-7"
CASES = 40
CONCURRENCY = 2


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with running_fake_openai(latency=0.15) as server:
        yield server


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_run_is_a_celery_job_and_resumes_after_a_worker_sigkill(
    pg_url: str, tmp_path: Path, fake: FakeUpstream
) -> None:
    config = f"""
models:
  small:
    provider: openai
    base_url: {fake.openai_base_url}
    api_key_env: FAKE_KEY
    local: true
    price_input_per_mtok: 1.0
    price_output_per_mtok: 2.0
retry: {{max_attempts: 1}}
"""
    env = {
        "FAKE_KEY": "sk-fake",
        "GATEWAY_DATABASE_URL": pg_url,
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
        "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GATEWAY_JOBS_BROKER_URL": BROKER,
        "GATEWAY_JOBS_QUEUE": f"prism.jobs.test.{uuid.uuid4().hex[:8]}",
        "GATEWAY_JOBS_STORAGE_DIR": str(tmp_path / "uploads"),
        "GATEWAY_JOBS_LEASE_S": "4",
        "GATEWAY_DURABLE_CHECKPOINT_SHARDS": "1",
        "GATEWAY_DURABLE_POOL_SIZE": "2",
        "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05",
    }
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("w1", "w2")}
    workers: dict[str, subprocess.Popen[bytes]] = {}
    engine = create_engine(_sync_url(pg_url))
    stack = contextlib.ExitStack()
    try:
        with running_gateway(tmp_path, config=config, env=env, ready_timeout=180.0) as gw:
            worker_env = {**env, "GATEWAY_CONFIG": str(tmp_path / "prism.yaml")}
            workers["w1"] = start_worker(worker_env, "w1", logs["w1"])
            token = httpx.post(
                gw.url + "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            ).json()["access_token"]
            client = httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            stack.callback(client.close)  # closed however the test ends (a leaked socket fails a later test)
            spec = {
                "name": "on the queue",
                "variants": [{"label": "v", "messages": "Repeat after me.", "model": "small"}],
                "cases": [{"input": f"word{i}", "expected": f"word{i}"} for i in range(CASES)],
                "assert": [{"type": "contains", "value": "{{expected}}"}],
                "concurrency": CONCURRENCY,
            }
            created = client.post("/api/evaluations", json=spec)
            assert created.status_code == 202, created.text
            run_id, job_id = created.json()["id"], created.json()["job_id"]
            assert job_id, created.json()  # a broker: the run went to the queue
            assert client.get(f"/api/evaluations/{run_id}").json()["job_id"] == job_id

            def progressed() -> int | None:
                done = int(client.get(f"/api/evaluations/{run_id}").json()["progress"]["done"])
                return done if done >= 6 else None

            done_at_kill = wait_until(progressed, "the worker is mid-run", within_s=180, poll_s=0.05)
            os.killpg(workers["w1"].pid, signal.SIGKILL)
            workers["w1"].wait(timeout=10)
            assert client.get(f"/api/evaluations/{run_id}").json()["status"] == "running"
            workers["w2"] = start_worker(worker_env, "w2", logs["w2"])

            def finished() -> dict[str, Any] | None:
                run: dict[str, Any] = client.get(f"/api/evaluations/{run_id}").json()
                return run if run["status"] not in ("queued", "running") else None

            run = wait_until(finished, "the run finished on the second worker", within_s=240)
            assert run["status"] == "completed" and run["progress"] == {"done": CASES, "total": CASES}
            assert done_at_kill < CASES
            results = client.get(f"/api/evaluations/{run_id}/results").json()["data"]
            assert len(results) == CASES and all(r["pass"] for r in results)
            # The run completes inside the job; the job's own row is finished just after it.
            job = wait_until(
                lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] != "running" and j,
                "the evaluation job finished",
            )
            assert job["status"] == "succeeded" and job["type"] == "evaluation" and job["attempts"] >= 2

            def calls() -> int | None:
                with engine.connect() as conn:
                    n = conn.execute(
                        text(
                            "select count(*) from usage_logs"
                            " where traffic = 'evaluation' and model_served = 'small'"
                        )
                    ).scalar_one()
                return int(n) if n >= CASES else None

            made = wait_until(calls, "the evaluation calls' usage records")
            assert made <= CASES + CONCURRENCY  # at most the calls in flight at the kill were repeated
            assert '"eval_run_started"' in (tmp_path / "w2.log").read_text(errors="replace")
    finally:
        stack.close()
        for process in workers.values():
            _stop(process)
        for log in logs.values():
            log.close()
        engine.dispose()
