"""Jobs on the real queue: a uvicorn gateway publishing to RabbitMQ, Celery worker processes
(``make worker``'s command) on Postgres. Two workers share the load; a worker SIGKILLed mid-job
(its whole process group) has its job finished by the other, from the last checkpoint, and every
job finishes exactly once (one outcome, one usage row)."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration.db_fixtures import *  # noqa: F403
from tests.support.audio_samples import PROBE, encode, espeak_available, join, speak
from tests.support.gateway_proc import ROOT, GatewayProcess, running_gateway
from tests.support.ocr_documents import font_paths, page_text, render
from tests.support.waiting import wait_until

BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _rabbit_up(), reason="RabbitMQ is not running on 127.0.0.1:5672")


def _env(pg_url: str, storage: Path, queue: str) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE_URL": pg_url,
        "GATEWAY_JOBS_BROKER_URL": BROKER,
        "GATEWAY_JOBS_QUEUE": queue,
        "GATEWAY_JOBS_STORAGE_DIR": str(storage),
        "GATEWAY_JOBS_LEASE_S": "4",
        "GATEWAY_DURABLE_CHECKPOINT_SHARDS": "1",
        "GATEWAY_DURABLE_POOL_SIZE": "2",
    }


def start_worker(env: dict[str, str], name: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "gateway.workers.jobs",
            "worker",
            "-Q",
            env["GATEWAY_JOBS_QUEUE"],
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "GATEWAY_ENV": "test",
            "GATEWAY_LOG_FORMAT": "json",
            "GATEWAY_CONFIG": str(ROOT / "config" / "prism.yaml"),
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: SIGKILL takes the children too
    )


def scanned_pdf(pages: int, seed: int) -> bytes:
    images = [
        render(page_text("en", seed=seed + i, lines=5), font_path=font_paths("en")[0], dpi=200).convert("RGB")
        for i in range(pages)
    ]
    out = io.BytesIO()
    images[0].save(out, format="PDF", resolution=200, save_all=True, append_images=images[1:])
    return out.getvalue()


def submit(gw: GatewayProcess, data: bytes) -> str:
    response = httpx.post(
        f"{gw.url}/v1/jobs",
        data={"type": "ocr"},
        files={"file": ("scan.pdf", data, "application/pdf")},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def status(gw: GatewayProcess, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{gw.url}/v1/jobs/{job_id}", timeout=10).json()
    return body


@pytest.fixture
def setup(pg_url: str, tmp_path: Path) -> Iterator[tuple[GatewayProcess, dict[str, str], Path]]:
    env = _env(pg_url, tmp_path / "uploads", f"prism.jobs.test.{uuid.uuid4().hex[:8]}")
    with running_gateway(tmp_path, env=env, ready_timeout=180.0) as gw:
        yield gw, env, tmp_path


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _sync_url(pg_url: str) -> str:
    return pg_url.replace("+asyncpg", "+psycopg")


def test_two_workers_share_the_load_and_a_killed_workers_job_finishes_exactly_once(
    setup: tuple[GatewayProcess, dict[str, str], Path], pg_url: str
) -> None:
    gw, env, tmp = setup
    logs = {name: (tmp / f"{name}.log").open("wb") for name in ("w1", "w2")}
    workers = {name: start_worker(env, name, logs[name]) for name in ("w1", "w2")}
    try:
        jobs = [submit(gw, scanned_pdf(2, seed=10 * i)) for i in range(4)]
        engine = create_engine(_sync_url(pg_url))

        def w1_running_a_job() -> bool:
            children = _children(workers["w1"].pid)
            with engine.connect() as conn:
                owners = conn.execute(text("select owner from jobs where status = 'running'")).scalars().all()
            return any(owner and int(owner.rsplit(":", 1)[1]) in children for owner in owners)

        wait_until(w1_running_a_job, "w1 is in the middle of a job", within_s=120, poll_s=0.05)
        os.killpg(workers["w1"].pid, signal.SIGKILL)
        workers["w1"].wait(timeout=10)

        seen_progress: list[dict[str, Any]] = []

        def all_done() -> list[dict[str, Any]] | None:
            states = [status(gw, job) for job in jobs]
            seen_progress.extend(s["progress"] for s in states if s["status"] == "running")
            return (
                states if all(s["status"] in ("succeeded", "failed", "cancelled") for s in states) else None
            )

        states = wait_until(all_done, "every job finished", within_s=300)
        assert [s["status"] for s in states] == ["succeeded"] * len(jobs), states
        assert max(s["attempts"] for s in states) >= 2  # the killed worker's job was taken over
        pages_seen = [p["detail"] for p in seen_progress if p.get("detail", {}).get("unit") == "pages"]
        assert pages_seen, f"no per-page progress seen while jobs ran: {seen_progress[:5]}"
        w2_log = (tmp / "w2.log").read_text(errors="replace")
        assert '"job_finished"' in w2_log
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select request_id, count(*) from usage_logs"
                    " where request_id = any(:ids) group by request_id"
                ),
                {"ids": [f"job-{j}" for j in jobs]},
            ).all()
        engine.dispose()
        assert sorted(count for _, count in rows) == [1] * len(jobs)  # each job finished exactly once
        for job in jobs:
            result = httpx.get(f"{gw.url}/v1/jobs/{job}/result", timeout=10).json()["result"]
            assert len(result["pages"]) == 2 and result["pages"][0]["source"] == "ocr" and result["text"]
        if espeak_available():  # a transcription job runs on a Celery worker too (its own audio models)
            audio = encode(join([speak(PROBE)]))
            response = httpx.post(
                f"{gw.url}/v1/jobs",
                data={"type": "transcription", "options": '{"model": "sphinx-en"}'},
                files={"file": ("memo.wav", audio, "audio/wav")},
                timeout=30,
            )
            assert response.status_code == 202, response.text
            spoken = str(response.json()["id"])
            state = wait_until(
                lambda: (s := status(gw, spoken))["status"] in ("succeeded", "failed") and s,
                "the transcription job finished",
                within_s=120,
            )
            assert state["status"] == "succeeded", state
            result = httpx.get(f"{gw.url}/v1/jobs/{spoken}/result", timeout=10).json()["result"]
            assert result["model"] == "sphinx-en" and result["text"].strip()
            assert result["usage"]["seconds"] > 1
    finally:
        for process in workers.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        for log in logs.values():
            log.close()
