"""``GATEWAY_JOBS_TOKENS_PER_DAY`` counts the tokens of the model calls a job's pipeline makes
through Prism's request path (``summarize``, ``document_analysis``): a real gateway (SQLite,
in-process worker, mock model) runs a ``summarize`` job whose map-reduce needs more tokens than the
day allows — its calls are counted into the job's ``tokens``, the call that would start with the
allowance spent is refused and the job fails with ``token_quota_exceeded``; the next submission of
the key is refused at once with 429."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scripts.gen_gongmun import generate
from tests.support.gateway_proc import GatewayProcess, running_gateway
from tests.support.waiting import wait_until

LIMIT = 150


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("jobs-tokens")
    env = {
        "GATEWAY_JOBS_STORAGE_DIR": str(tmp / "uploads"),
        "GATEWAY_JOBS_MODEL": "mock-fast",
        "GATEWAY_JOBS_TOKENS_PER_DAY": str(LIMIT),
    }
    config = "models:\n  mock-fast: {provider: mock, tier: cheap}\n"
    with running_gateway(tmp, config=config, env=env, ready_timeout=180.0) as gw:
        yield gw


def submit(gw: GatewayProcess, text: str, job_type: str, options: str = "{}") -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/jobs",
        data={"type": job_type, "options": options},
        files={"file": ("doc.txt", text.encode(), "text/plain")},
        timeout=30,
    )


def test_pipeline_tokens_count_against_the_jobs_daily_quota(gateway: GatewayProcess) -> None:
    text = "\n\n".join(letter.text for letter in generate("dev", per_layout=1, seed=3)[:3])
    response = submit(gateway, text, "summarize", '{"chunk_chars": 300}')
    assert response.status_code == 202, response.text

    def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(f"{gateway.url}/v1/jobs/{response.json()['id']}", timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_until(ended, "the summarize job", within_s=120)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "token_quota_exceeded", job["error"]
    assert "quota" in job["error"]["message"]
    # the calls made before the allowance ran out are the job's tokens (they were 0 before #23's fix)
    assert job["usage"]["tokens"] >= LIMIT, job["usage"]
    again = submit(gateway, "a short note to summarize", "document_analysis")
    assert again.status_code == 429, again.text
    error = again.json()["error"]
    assert error["code"] == "token_quota_exceeded" and error["type"] == "insufficient_quota"
