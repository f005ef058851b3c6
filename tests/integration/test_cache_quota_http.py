"""The response cache and quotas through real HTTP, against Redis and the in-process backend alike."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.providers.tokens import count_messages
from tests.support.gateway_proc import GatewayProcess, running_gateway, start_gateway
from tests.support.redis_proc import RedisProcess

CONFIG = """
models:
  cached:
    provider: mock
    tier: cheap
    cache_ttl_s: 60
    mock: {{latency_ms: {latency}}}
  other:
    provider: mock
    tier: strong
quotas:
  fail_mode: {fail_mode}
  tiers:
    free: {{rpm: {rpm}, tpm: {tpm}}}
"""


def config(*, latency: int = 0, rpm: int = 100_000, tpm: int = 100_000_000, fail_mode: str = "open") -> str:
    return CONFIG.format(latency=latency, rpm=rpm, tpm=tpm, fail_mode=fail_mode)


def _env(backend: str, prefix: str, redis_url: str = "redis://127.0.0.1:6379/0") -> dict[str, str]:
    # A generous Redis timeout: these tests prove atomicity under a burst on a busy machine, and the
    # default (50 ms, fail-open) would let slow calls through by design.
    env = {
        "GATEWAY_REDIS_KEY_PREFIX": prefix,
        "GATEWAY_AUTH_ENABLED": "false",
        "GATEWAY_REDIS_TIMEOUT_MS": "3000",
    }
    if backend == "redis":
        env["GATEWAY_REDIS_URL"] = redis_url
    return env


def _provider_calls(gateway: GatewayProcess, model: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    match = re.search(rf'prism_provider_requests_total{{model="{model}",provider="mock"}} ([0-9.e+]+)', text)
    return float(match.group(1)) if match else 0.0


@pytest.fixture(params=["memory", "redis"])
def cached_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayProcess]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    with running_gateway(tmp_path, config=config(latency=300), env=_env(request.param, prefix)) as gateway:
        yield gateway


def _ask(gateway: GatewayProcess, text: str, **kwargs: object) -> httpx.Response:
    body = {"model": "cached", "messages": [{"role": "user", "content": text}], "temperature": 0, **kwargs}
    headers = kwargs.pop("headers", None) if "headers" in kwargs else None
    return httpx.post(f"{gateway.openai_base_url}/chat/completions", json=body, headers=headers, timeout=10)


def test_miss_then_hit_bypass_and_no_store(cached_gateway: GatewayProcess) -> None:
    text = f"cache me {uuid.uuid4().hex}"
    first = _ask(cached_gateway, text)
    second = _ask(cached_gateway, text)
    assert first.headers["x-prism-cache"] == "miss"
    assert second.headers["x-prism-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["id"] != first.json()["id"]
    assert _provider_calls(cached_gateway, "cached") == 1
    assert _ask(cached_gateway, text, temperature=0.9).headers["x-prism-cache"] == "bypass"
    no_cache = httpx.post(
        f"{cached_gateway.openai_base_url}/chat/completions",
        timeout=10,
        json={"model": "cached", "temperature": 0, "messages": [{"role": "user", "content": text}]},
        headers={"cache-control": "no-cache"},
    )
    assert no_cache.headers["x-prism-cache"] == "bypass"
    fresh = f"do not store {uuid.uuid4().hex}"
    for _ in range(2):
        response = httpx.post(
            f"{cached_gateway.openai_base_url}/chat/completions",
            timeout=10,
            json={"model": "cached", "temperature": 0, "messages": [{"role": "user", "content": fresh}]},
            headers={"cache-control": "no-store"},
        )
        assert response.headers["x-prism-cache"] == "miss"
    metrics = httpx.get(f"{cached_gateway.url}/metrics").text
    assert 'prism_cache_requests_total{result="hit"} 1.0' in metrics


def test_streamed_hit_is_a_stream(cached_gateway: GatewayProcess) -> None:
    text = f"stream cache {uuid.uuid4().hex}"
    _ask(cached_gateway, text)
    client = openai.OpenAI(base_url=cached_gateway.openai_base_url, api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="cached",
        messages=[{"role": "user", "content": text}],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-prism-cache"] == "hit"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"cached says: {text}"
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_single_flight_twenty_identical_misses_one_upstream_call(cached_gateway: GatewayProcess) -> None:
    text = f"stampede {uuid.uuid4().hex}"

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=20) as client:
            body = {"model": "cached", "temperature": 0, "messages": [{"role": "user", "content": text}]}
            return await asyncio.gather(
                *[
                    client.post(f"{cached_gateway.openai_base_url}/chat/completions", json=body)
                    for _ in range(20)
                ]
            )

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {f"cached says: {text}"}
    assert _provider_calls(cached_gateway, "cached") == 1


def test_tenants_never_share_entries(tmp_path: Path) -> None:
    env = {
        **_env("redis", f"test-{uuid.uuid4().hex[:8]}"),
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_API_KEY_CACHE_TTL_S": "0",
    }
    with running_gateway(tmp_path, config=config(), env=env) as gateway:
        tokens = []
        for _ in range(2):
            email = f"tenant-{uuid.uuid4().hex[:10]}@example.com"
            httpx.post(
                f"{gateway.url}/auth/register", json={"email": email, "password": "violet-harbour-kettle-91"}
            )
            login = httpx.post(
                f"{gateway.url}/auth/login", json={"email": email, "password": "violet-harbour-kettle-91"}
            )
            tokens.append(login.json()["access_token"])
        body = {"model": "cached", "seed": 7, "messages": [{"role": "user", "content": "shared question"}]}
        url = f"{gateway.openai_base_url}/chat/completions"
        first = httpx.post(url, json=body, headers={"Authorization": f"Bearer {tokens[0]}"})
        again = httpx.post(url, json=body, headers={"Authorization": f"Bearer {tokens[0]}"})
        other = httpx.post(url, json=body, headers={"Authorization": f"Bearer {tokens[1]}"})
        assert (first.headers["x-prism-cache"], again.headers["x-prism-cache"]) == ("miss", "hit")
        assert other.headers["x-prism-cache"] == "miss"


def test_rpm_holds_exactly_across_three_processes(tmp_path: Path) -> None:
    limit = 30
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    gateways = [
        start_gateway(tmp_path / str(i), config=config(rpm=limit), env=_env("redis", prefix))
        for i in range(3)
        if (tmp_path / str(i)).mkdir() is None
    ]
    try:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=20) as client:
                return await asyncio.gather(
                    *[
                        client.post(
                            f"{gateways[i % 3].openai_base_url}/chat/completions",
                            json={"model": "other", "messages": [{"role": "user", "content": f"q{i}"}]},
                        )
                        for i in range(3 * limit)
                    ]
                )

        responses = asyncio.run(burst())
        ok = [r for r in responses if r.status_code == 200]
        limited = [r for r in responses if r.status_code == 429]
        assert len(ok) == limit
        assert len(limited) == 2 * limit
        for response in limited:
            assert response.json()["error"]["code"] == "rate_limit_exceeded"
            assert 0 < float(response.headers["retry-after"]) <= 60
            assert response.headers["x-ratelimit-limit-requests"] == str(limit)
        assert ok[0].headers["x-ratelimit-limit-requests"] == str(limit)
    finally:
        for gateway in gateways:
            gateway.stop()


def test_tpm_holds_across_processes_with_streams(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "count my tokens"}]
    estimate = count_messages(messages) + 10
    tpm = estimate * 12
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    gateways = [
        start_gateway(tmp_path / str(i), config=config(latency=1500, tpm=tpm), env=_env("redis", prefix))
        for i in range(3)
        if (tmp_path / str(i)).mkdir() is None
    ]
    try:

        async def one(client: httpx.AsyncClient, i: int) -> int:
            body = {
                "model": "cached",
                "messages": messages,
                "max_tokens": 10,
                "stream": True,
                "temperature": 1,
            }
            async with client.stream(
                "POST", f"{gateways[i % 3].openai_base_url}/chat/completions", json=body
            ) as response:
                await response.aread()
                return response.status_code

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(*[one(client, i) for i in range(36)])

        statuses = asyncio.run(burst())
        assert statuses.count(200) == 12
        assert statuses.count(429) == 24
    finally:
        for gateway in gateways:
            gateway.stop()


def test_redis_outage_fail_open_and_closed_then_recovery(tmp_path: Path) -> None:
    redis_server = RedisProcess(tmp_path).start()
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    (tmp_path / "open").mkdir()
    (tmp_path / "closed").mkdir()
    open_gw = start_gateway(
        tmp_path / "open", config=config(rpm=1000), env=_env("redis", prefix, redis_server.url)
    )
    closed_gw = start_gateway(
        tmp_path / "closed",
        config=config(rpm=1000, fail_mode="closed"),
        env=_env("redis", prefix + "c", redis_server.url),
    )
    try:
        body = {"model": "other", "messages": [{"role": "user", "content": "hello"}]}
        for gateway in (open_gw, closed_gw):
            assert httpx.post(f"{gateway.openai_base_url}/chat/completions", json=body).status_code == 200
        redis_server.kill()
        assert httpx.post(f"{open_gw.openai_base_url}/chat/completions", json=body).status_code == 200
        refused = httpx.post(f"{closed_gw.openai_base_url}/chat/completions", json=body)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "service_unavailable"
        assert httpx.get(f"{closed_gw.url}/readyz").status_code == 503
        assert "prism_backend_errors_total" in httpx.get(f"{open_gw.url}/metrics").text
        redis_server = RedisProcess(tmp_path, port=redis_server.port).start()
        for gateway in (open_gw, closed_gw):
            response = httpx.post(f"{gateway.openai_base_url}/chat/completions", json=body)
            assert response.status_code == 200
            assert response.headers["x-ratelimit-remaining-requests"] == "999"  # counting again from zero
    finally:
        open_gw.stop()
        closed_gw.stop()
        redis_server.kill()
