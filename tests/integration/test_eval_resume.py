"""An evaluation run survives its gateway: stopped with SIGTERM (the run is handed back and the next
gateway resumes it at once) and killed with SIGKILL (the lease expires and the next gateway takes
it over). Real uvicorn processes on one Postgres database, a slow fake upstream; no pair is stored
twice and the stored pairs are not called again."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import FakeUpstream, running_fake_openai
from tests.support.gateway_proc import GatewayProcess, start_gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "resume-admin@example.com"
ADMIN_PASSWORD = "Resume-admin-passphrase-9"
CASES = 16


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with running_fake_openai(latency=0.15) as server:
        yield server


def _start(tmp: Path, url: str, fake: FakeUpstream) -> GatewayProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    config = f"""
models:
  small:
    provider: openai
    base_url: {fake.openai_base_url}
    api_key_env: FAKE_KEY
    local: true
retry: {{max_attempts: 1}}
"""
    return start_gateway(
        tmp,
        config=config,
        env={
            "FAKE_KEY": "sk-fake",
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_DATABASE_URL": url,
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_EVAL_LEASE_S": "2",
        },
        ready_timeout=120,  # a loaded machine starts a gateway slowly; a fast one never waits this out
    )


def _client(gw: GatewayProcess) -> httpx.Client:
    token = httpx.post(
        gw.url + "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    ).json()["access_token"]
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0)


def _progress(client: httpx.Client, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = client.get(f"/api/evaluations/{run_id}").json()
    return run


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_run_resumes_after_restart(
    tmp_path: Path, pg_database: str, fake: FakeUpstream, stop: signal.Signals
) -> None:
    first = _start(tmp_path / "a", pg_database, fake)
    try:
        with _client(first) as client:
            spec = {
                "variants": [
                    {
                        "label": "v",
                        "messages": [{"role": "user", "content": "Say {{word}}"}],
                        "model": "small",
                    }
                ],
                "cases": [{"vars": {"word": f"w{i}"}} for i in range(CASES)],
                "assert": [{"type": "contains", "value": "{{word}}"}],
                "concurrency": 1,
            }
            fake.reset()
            r = client.post("/api/evaluations", json=spec)
            assert r.status_code == 202, r.text
            run_id = r.json()["id"]
            wait_until(lambda: _progress(client, run_id)["progress"]["done"] >= 3, "three results stored")
    finally:
        first.signal(stop)
        first.stop()
    second = _start(tmp_path / "b", pg_database, fake)
    try:
        with _client(second) as client:
            before = _progress(client, run_id)
            assert 3 <= before["progress"]["done"] < CASES
            if stop is signal.SIGTERM:
                assert before["status"] in (
                    "queued",
                    "running",
                )  # handed back, not stuck until a lease expires

            def finished() -> dict[str, Any] | None:
                run = _progress(client, run_id)
                return run if run["status"] == "completed" else None

            run = wait_until(finished, "the run resumed and completed", within_s=60)
            assert run["progress"] == {"done": CASES, "total": CASES}
            results = client.get(f"/api/evaluations/{run_id}/results").json()["data"]
            assert sorted(r["case_id"] for r in results) == sorted(f"c{i}" for i in range(CASES))
            assert all(r["pass"] for r in results), [r for r in results if not r["pass"]]
            calls = len(fake.requests_to("/v1/chat/completions"))
            assert CASES <= calls <= CASES + 1  # at most the call in flight at the stop is made again
    finally:
        second.stop()
