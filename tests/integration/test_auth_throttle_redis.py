"""The Redis attempt store on the shared Redis (own key prefix): the same rules as in process,
atomic under concurrency; and the fallback to in-process windows when Redis cannot be reached."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from gateway.cache.backends import make_redis
from gateway.errors import RateLimited
from gateway.security.throttle import AuthThrottle, ThrottleLimits
from tests.integration.cache_fixtures import *  # noqa: F403 - shared_redis_url
from tests.integration.cache_fixtures import delete_prefix
from tests.support.ports import unused_port

pytestmark = pytest.mark.integration
LIMITS = ThrottleLimits(window_s=60, per_account_address=3, per_address=50, per_account=6)


@pytest.fixture
async def redis(shared_redis_url: str) -> AsyncIterator[tuple[Redis, str]]:
    client = make_redis(shared_redis_url, timeout_ms=2000)
    prefix = f"throttle-test-{uuid.uuid4().hex[:10]}"
    yield client, prefix
    await delete_prefix(client, prefix)
    await client.aclose()


async def test_concurrent_guesses_admit_exactly_the_limit(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    throttles = [AuthThrottle(limits=LIMITS, redis=client, prefix=prefix) for _ in range(4)]  # 4 "workers"
    results = await asyncio.gather(
        *(throttles[i % 4].login(account="v@x.io", address="198.51.100.1") for i in range(40)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 3
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(refused) == 37 and all(1 <= int(r.headers["Retry-After"]) <= 60 for r in refused)


async def test_soft_account_bucket_and_release(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    throttle = AuthThrottle(limits=LIMITS, redis=client, prefix=prefix)
    for i in range(6):
        await throttle.login(account="v@x.io", address=f"10.1.0.{i}")
    with pytest.raises(RateLimited):
        await throttle.login(account="v@x.io", address="10.1.0.1")  # dirty address, account full
    ok = await throttle.login(account="v@x.io", address="192.0.2.1")  # clean address
    await ok.succeeded()
    assert await client.zcard(f"{prefix}:auth:login:addr:192.0.2.1") == 0  # a success is not counted


async def test_unreachable_redis_falls_back_to_in_process_windows() -> None:
    with unused_port() as held:  # bound, never listening: connections are refused
        port = held.getsockname()[1]
        dead = make_redis(f"redis://127.0.0.1:{port}/0", timeout_ms=100)
        throttle = AuthThrottle(limits=LIMITS, redis=dead, prefix="unused")
        labels = {"action": "login", "outcome": "fallback"}
        before = REGISTRY.get_sample_value("prism_auth_throttle_total", labels) or 0.0
        for _ in range(3):
            await throttle.login(account="v@x.io", address="198.51.100.2")
        with pytest.raises(RateLimited):
            await throttle.login(account="v@x.io", address="198.51.100.2")
        assert (REGISTRY.get_sample_value("prism_auth_throttle_total", labels) or 0.0) - before == 4
        await dead.aclose()
