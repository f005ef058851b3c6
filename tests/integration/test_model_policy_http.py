"""Authorization on the served model over real HTTP (issue #18): a key allowed only a cheap model is
never served a dearer one through a fallback, and a key allowed only ``auto`` gets a 403 naming the
policy, not the models it may not use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.gateway_proc import GatewayProcess, running_gateway

pytestmark = pytest.mark.integration

ADMIN = ("policy-admin@example.com", "An-admin-passphrase-42")
CONFIG = """
models:
  cheap: {provider: mock, tier: cheap, mock: {failure_rate: 1.0, failure_kind: "500"}}
  cheap-ok: {provider: mock, tier: cheap}
  dear: {provider: mock, tier: strong, price_input_per_mtok: 30}
aliases:
  auto: {smart: true}
fallbacks:
  cheap: [dear, cheap-ok]
retry: {max_attempts: 1, deadline_s: 10}
circuit_breaker: {failure_threshold: 100}
cache: {enabled: false}
"""
HARD = (
    "Prove step by step that the square root of two is irrational, then derive a general proof for every "
    "prime number and explain each reasoning step with rigorous mathematical justification."
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env = {
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_ADMIN_EMAIL": ADMIN[0],
        "GATEWAY_ADMIN_PASSWORD": ADMIN[1],
    }
    tmp: Path = tmp_path_factory.mktemp("policy")
    with running_gateway(tmp, config=CONFIG, env=env) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def admin(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        login = http.post("/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield http


def _key(admin: httpx.Client, *models: str) -> str:
    created = admin.post("/api/keys", json={"name": "scoped", "allowed_models": list(models)})
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def _client(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.openai_base_url, api_key=key, max_retries=0)


def _calls(gateway: GatewayProcess, model: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    pattern = rf'prism_provider_requests_total{{model="{model}",provider="mock"}} ([0-9.e+]+)'
    return sum(float(match.group(1)) for match in re.finditer(pattern, text))


def test_fallback_to_a_disallowed_model_never_happens(gateway: GatewayProcess, admin: httpx.Client) -> None:
    dear_before = _calls(gateway, "dear")
    with _client(gateway, _key(admin, "cheap")) as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503  # the primary's failure, not a dearer model's answer
    assert _calls(gateway, "dear") == dear_before

    with _client(gateway, _key(admin, "cheap", "cheap-ok")) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="cheap", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.headers["x-prism-model"] == "cheap-ok"
    assert raw.headers["x-prism-fallback"] == "cheap->cheap-ok"
    assert _calls(gateway, "dear") == dear_before

    with _client(gateway, _key(admin)) as client:  # no allow-list: the configured chain as before
        raw = client.chat.completions.with_raw_response.create(
            model="cheap", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.headers["x-prism-model"] == "dear"


def test_streamed_fallback_is_filtered_too(gateway: GatewayProcess, admin: httpx.Client) -> None:
    with _client(gateway, _key(admin, "cheap", "cheap-ok")) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="cheap", messages=[{"role": "user", "content": "stream"}], stream=True
        )
        assert raw.headers["x-prism-model"] == "cheap-ok"
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)


def test_auto_only_key_gets_403_naming_the_policy_not_the_models(
    gateway: GatewayProcess, admin: httpx.Client
) -> None:
    key = _key(admin, "auto")
    body = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}]}
    for path in ("/v1/chat/completions", "/v1/route/explain"):
        answer = httpx.post(f"{gateway.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 403, answer.text
        error = answer.json()["error"]
        assert error["code"] == "model_not_allowed" and error["type"] == "permission_error"
        assert "allowed_models" in error["message"]
        assert not any(name in error["message"] for name in ("cheap", "dear"))


def test_auto_with_a_cheap_model_allowed_serves_only_that_model(
    gateway: GatewayProcess, admin: httpx.Client
) -> None:
    key = _key(admin, "auto", "cheap-ok")
    explained = httpx.post(
        f"{gateway.url}/v1/route/explain",
        json={"model": "auto", "messages": [{"role": "user", "content": HARD}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert explained.status_code == 200, explained.text
    assert explained.json()["model"] == "cheap-ok" and explained.json()["fallbacks"] == []
    with _client(gateway, key) as client:
        for prompt in (HARD, "hi!"):
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": prompt}]
            )
            assert raw.headers["x-prism-model"] == "cheap-ok"
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'prism_route_policy_total{outcome="denied"}' in metrics
    assert 'prism_route_policy_total{outcome="filtered"}' in metrics
