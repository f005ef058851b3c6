"""Retries, fallbacks and circuit breakers end to end, provoked with the mock provider's fault knobs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.gateway_proc import GatewayProcess, running_gateway
from tests.support.waiting import wait_until

CONFIG = """
models:
  primary:
    provider: mock
    tier: cheap
    mock: {{failure_rate: {failure_rate}, failure_kind: "{kind}", retry_after_s: 0.05}}
  backup:
    provider: mock
    tier: strong
  lonely:
    provider: mock
    tier: cheap
    mock: {{failure_rate: 1.0, failure_kind: "{lonely_kind}"}}
    timeouts: {{first_token_s: 0.5, total_s: 0.5}}
fallbacks:
  primary: [backup]
retry: {{max_attempts: 2, base_delay_s: 0.01, max_delay_s: 0.05, deadline_s: 10}}
circuit_breaker: {{failure_threshold: 2, cooldown_s: {cooldown}, max_cooldown_s: 10}}
"""


def config(
    *, failure_rate: float = 1.0, kind: str = "500", lonely_kind: str = "500", cooldown: float = 1.0
) -> str:
    return CONFIG.format(failure_rate=failure_rate, kind=kind, lonely_kind=lonely_kind, cooldown=cooldown)


def _client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.openai_base_url, api_key="unused", max_retries=0)


ADMIN = {"GATEWAY_ADMIN_EMAIL": "ops@example.com", "GATEWAY_ADMIN_PASSWORD": "Operator-passphrase-31"}
"""An admin (``/v1`` stays anonymous) to read ``GET /admin/circuits``."""


def _cooled_down(gateway: GatewayProcess, target: str) -> None:
    """Wait until ``target``'s open circuit has cooled down (``GET /admin/circuits`` says half-open:
    the next request is the probe), instead of sleeping past the cooldown."""
    login = httpx.post(
        f"{gateway.url}/auth/login",
        json={"email": ADMIN["GATEWAY_ADMIN_EMAIL"], "password": ADMIN["GATEWAY_ADMIN_PASSWORD"]},
    )
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def state() -> object:
        circuits = httpx.get(f"{gateway.url}/admin/circuits", headers=headers).json()["circuits"]
        return circuits.get(target, {}).get("state")

    wait_until(lambda: state() == "half_open", f"the circuit of {target} cools down")


def _attempts(gateway: GatewayProcess, target: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    total = 0.0
    for match in re.finditer(
        rf'prism_provider_requests_total{{model="{target}",provider="mock"}} ([0-9.e+]+)', text
    ):
        total += float(match.group(1))
    return total


@pytest.fixture
def failing_primary(tmp_path: Path):  # type: ignore[no-untyped-def]
    with running_gateway(tmp_path, config=config(), env=ADMIN) as gateway:
        yield gateway


def test_failing_primary_falls_back_and_says_so(failing_primary: GatewayProcess) -> None:
    raw = _client(failing_primary).chat.completions.with_raw_response.create(
        model="primary", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.parse().choices[0].message.content == "backup says: hello"
    assert raw.headers["x-prism-model"] == "backup"
    assert raw.headers["x-prism-fallback"] == "primary->backup"
    assert _attempts(failing_primary, "primary") == 2  # one retry, then fallback


def test_streamed_failure_before_first_token_falls_back(failing_primary: GatewayProcess) -> None:
    stream = _client(failing_primary).chat.completions.with_raw_response.create(
        model="primary", messages=[{"role": "user", "content": "stream it"}], stream=True
    )
    assert stream.headers["x-prism-fallback"] == "primary->backup"
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    assert text == "backup says: stream it"


def test_circuit_opens_then_half_open_probe_closes_it(failing_primary: GatewayProcess) -> None:
    client = _client(failing_primary)
    client.chat.completions.create(model="primary", messages=[{"role": "user", "content": "1"}])
    opened_at = _attempts(failing_primary, "primary")
    assert opened_at == 2  # threshold 2 reached: the circuit is open now
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="primary", messages=[{"role": "user", "content": "skip"}]
        )
        assert raw.headers["x-prism-model"] == "backup"
    assert _attempts(failing_primary, "primary") == opened_at  # skipped while open
    failing_primary.reload_config(config(failure_rate=0.0))
    _cooled_down(failing_primary, "primary")  # the next request is the half-open probe
    raw = client.chat.completions.with_raw_response.create(
        model="primary", messages=[{"role": "user", "content": "probe"}]
    )
    assert raw.headers["x-prism-model"] == "primary"
    assert "x-prism-fallback" not in raw.headers
    metrics = httpx.get(f"{failing_primary.url}/metrics").text
    assert 'prism_circuit_state{target="primary"} 0.0' in metrics
    assert 'prism_circuit_transitions_total{state="open",target="primary"} 1.0' in metrics


def test_failed_probe_reopens_circuit(tmp_path: Path) -> None:
    with running_gateway(tmp_path, config=config(cooldown=0.3), env=ADMIN) as gateway:
        client = _client(gateway)
        client.chat.completions.create(model="primary", messages=[{"role": "user", "content": "1"}])
        _cooled_down(gateway, "primary")
        client.chat.completions.create(model="primary", messages=[{"role": "user", "content": "probe"}])
        assert _attempts(gateway, "primary") == 3  # the probe went upstream once and failed
        client.chat.completions.create(model="primary", messages=[{"role": "user", "content": "skip"}])
        assert _attempts(gateway, "primary") == 3  # reopened with a longer cooldown


@pytest.mark.parametrize(
    ("kind", "status", "error_class"),
    [
        ("500", 503, openai.InternalServerError),
        ("429", 429, openai.RateLimitError),
        ("hang", 504, openai.APIStatusError),
    ],
)
def test_exhausted_chain_maps_upstream_failures(
    tmp_path: Path, kind: str, status: int, error_class: type[Exception]
) -> None:
    with running_gateway(tmp_path, config=config(lonely_kind=kind)) as gateway:
        started = time.monotonic()
        with pytest.raises(error_class) as caught:
            _client(gateway).chat.completions.create(
                model="lonely", messages=[{"role": "user", "content": "x"}]
            )
        assert getattr(caught.value, "status_code", None) == status
        assert time.monotonic() - started < 5


def test_rate_limited_primary_goes_straight_to_fallback(tmp_path: Path) -> None:
    with running_gateway(tmp_path, config=config(kind="429")) as gateway:
        raw = _client(gateway).chat.completions.with_raw_response.create(
            model="primary", messages=[{"role": "user", "content": "x"}]
        )
        assert raw.headers["x-prism-model"] == "backup"
        assert _attempts(gateway, "primary") == 1  # no backoff wait when a fallback can take over


def test_invalid_reload_keeps_running_config(failing_primary: GatewayProcess) -> None:
    failing_primary.config_path.write_text("models:\n  broken:\n    provider: carrier-pigeon\n")
    failing_primary.signal(__import__("signal").SIGHUP)
    deadline = time.monotonic() + 5
    while "config_reload_rejected" not in failing_primary.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = failing_primary.log()
    assert "config_reload_rejected" in log
    assert "prism.yaml:3: models.broken.provider" in log
    answer = _client(failing_primary).chat.completions.create(
        model="backup", messages=[{"role": "user", "content": "still"}]
    )
    assert answer.choices[0].message.content == "backup says: still"
