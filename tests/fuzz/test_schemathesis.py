"""Property-based fuzzing of every public endpoint from the app's own OpenAPI (schemathesis).

At least ``FUZZ_REQUESTS`` (2,000) generated requests — valid and invalid bodies, paths, query
strings, headers — against a real gateway process (uvicorn subprocess, mock models, auth off
so that every operation is reachable). Every answer must be below 500; every error must be
in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` (Anthropic's on
``/v1/messages``); the log must hold no ``unhandled_error``. Bounded to about two minutes.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seed_of

from tests.support.gateway_proc import GatewayProcess, running_gateway

pytestmark = pytest.mark.slow
schemathesis = pytest.importorskip("schemathesis", reason="dev dependency schemathesis>=4.32 not installed")

FUZZ_REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "2000"))
BUDGET_S = float(os.environ.get("FUZZ_BUDGET_S", "110"))
SKIP = {("POST", "/admin/config/reload")}
"""Reloading the routing file is a no-op here (fuzzed separately by the config tests)."""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with running_gateway(tmp, env={"GATEWAY_MAX_BODY_BYTES": "65536"}) as gateway:
        yield gateway


def check_error_shape(response: Any, where: str) -> None:
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400 and " /v1/messages" in where:  # the Anthropic API family's envelope
        body = response.json()
        assert body["type"] == "error" and set(body) <= {"type", "error", "request_id"}, f"{where}: {body}"
        assert set(body["error"]) == {"type", "message"} and body["error"]["message"], f"{where}: {body}"
    elif response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, f"{where}: {body}"
        assert set(body["error"]) == {"message", "type", "param", "code"}, f"{where}: {body}"
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], f"{where}: {body}"


def test_fuzz_every_endpoint(gateway: GatewayProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if (op.method.upper(), op.path) not in SKIP]
    assert len(operations) >= 10, [op.label for op in operations]
    per_operation = -(-FUZZ_REQUESTS // len(operations))
    statuses: Counter[int] = Counter()
    sent = 0
    started = time.monotonic()
    def fuzz(operation: Any, examples: int, seed: int) -> None:
        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @seed_of(seed)
        def call(case: Any) -> None:
            nonlocal sent
            response = case.call(base_url=gateway.url, timeout=15)
            sent += 1
            statuses[response.status_code] += 1
            check_error_shape(response, f"{operation.label} {case.path_parameters} {case.body!r:.300}")

        call()

    for operation in operations:
        fuzz(operation, per_operation, 1)
    # Operations without parameters run out of distinct examples early: make up the count on
    # the ones with a body (chat completions first), with other seeds.
    bodied = sorted(
        (op for op in operations if op.body), key=lambda op: "chat/completions" not in op.path
    )
    for round_ in range(2, 12):
        if sent >= FUZZ_REQUESTS or not bodied:
            break
        fuzz(bodied[round_ % len(bodied)] if round_ > 2 else bodied[0], FUZZ_REQUESTS - sent, round_)
    assert time.monotonic() - started < BUDGET_S * 1.5, "fuzzing over its time budget"
    log = gateway.log()
    print(f"\nFUZZ {sent} requests over {len(operations)} operations in "
          f"{time.monotonic() - started:.1f}s; statuses {dict(sorted(statuses.items()))}")
    assert sent >= FUZZ_REQUESTS * 0.95, sent
    assert "unhandled_error" not in log, log[-3000:]
    Path(gateway.log_path).unlink(missing_ok=True)
