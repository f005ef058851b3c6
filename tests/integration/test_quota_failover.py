"""Redis killed mid-test: fail-open allows, fail-closed raises 503, cache degrades to misses;
after a restart everything works again with the same objects (the pool reconnects and the
scripts are reloaded by EVALSHA's NOSCRIPT fallback)."""

from __future__ import annotations

import signal
import time

import pytest

from gateway.cache import (
    CachedEntry,
    EffectiveLimits,
    QuotaLimiter,
    RedisQuotaBackend,
    RedisResponseStore,
    ResponseCache,
    ScopeLimits,
    make_redis,
    open_backends,
)
from gateway.config.quotas import QuotaConfig
from gateway.config.settings import get_settings
from gateway.errors import RateLimited, ServiceUnavailable
from gateway.observability.metrics import BACKEND_ERRORS
from gateway.security.principal import Principal
from tests.integration.cache_fixtures import *  # noqa: F403 - fixtures
from tests.integration.cache_fixtures import OwnRedis

pytestmark = pytest.mark.integration

P = Principal(user_id="u", api_key_id="k")
LIMITS = EffectiveLimits((ScopeLimits("key:k", rpm=3),))


def _errors(operation: str) -> float:
    return BACKEND_ERRORS.labels(operation=operation)._value.get()


async def test_redis_down_fail_open_closed_and_recovery(own_redis: OwnRedis) -> None:
    client = make_redis(own_redis.url, timeout_ms=100)
    backend = RedisQuotaBackend(client, prefix="failover")
    open_limiter = QuotaLimiter(backend, QuotaConfig(fail_mode="open"))
    closed_limiter = QuotaLimiter(backend, QuotaConfig(fail_mode="closed"))
    cache = ResponseCache(RedisResponseStore(client, prefix="failover"))
    entry = CachedEntry(response={"id": "x", "choices": []}, model_served="m")
    try:
        ok = await open_limiter.check_and_reserve(
            request_id="a", principal=P, estimated_tokens=1, estimated_cost_usd=0, limits=LIMITS
        )
        assert not ok.degraded and ok.headers()["x-ratelimit-remaining-requests"] == "2"
        await cache.set("k1", entry, 60)
        assert await cache.get("k1") is not None

        own_redis.stop()
        before = _errors("quota_reserve")
        t0 = time.monotonic()
        degraded = await open_limiter.check_and_reserve(
            request_id="b", principal=P, estimated_tokens=1, estimated_cost_usd=0, limits=LIMITS
        )
        assert degraded.degraded and degraded.headers() == {}
        assert time.monotonic() - t0 < 1.0
        assert _errors("quota_reserve") == before + 1
        with pytest.raises(ServiceUnavailable) as err:
            await closed_limiter.check_and_reserve(
                request_id="c", principal=P, estimated_tokens=1, estimated_cost_usd=0, limits=LIMITS
            )
        assert err.value.status_code == 503
        await open_limiter.settle(degraded, actual_tokens=1, actual_cost_usd=0)  # swallowed
        assert await cache.get("k1") is None  # a miss, not an exception
        await cache.set("k2", entry, 60)  # skipped
        async with cache.single_flight("k3", wait_s=1) as flight:
            assert flight  # no lock service: proceed alone

        own_redis.start()  # empty server: no keys, no scripts loaded
        for rid in ("d", "e", "f"):
            await closed_limiter.check_and_reserve(
                request_id=rid, principal=P, estimated_tokens=1, estimated_cost_usd=0, limits=LIMITS
            )
        with pytest.raises(RateLimited):
            await closed_limiter.check_and_reserve(
                request_id="g", principal=P, estimated_tokens=1, estimated_cost_usd=0, limits=LIMITS
            )
        await cache.set("k1", entry, 60)
        assert await cache.get("k1") is not None
    finally:
        await client.aclose()


async def test_slow_redis_is_bounded_by_the_timeout(own_redis: OwnRedis) -> None:
    """A Redis that accepts connections but does not answer (process stopped with SIGSTOP)."""
    client = make_redis(own_redis.url, timeout_ms=50)
    limiter = QuotaLimiter(RedisQuotaBackend(client, prefix="slow"), QuotaConfig(fail_mode="open"))
    assert own_redis.proc is not None
    try:
        await client.ping()
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            ticket = await limiter.check_and_reserve(
                request_id="s", principal=P, estimated_tokens=1, estimated_cost_usd=0, limits=LIMITS
            )
            elapsed = time.monotonic() - t0
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        assert ticket.degraded
        assert elapsed < 0.5
        ticket = await limiter.check_and_reserve(
            request_id="s2", principal=P, estimated_tokens=1, estimated_cost_usd=0, limits=LIMITS
        )
        assert not ticket.degraded
    finally:
        await client.aclose()


async def test_open_backends_factory(own_redis: OwnRedis) -> None:
    memory = await open_backends(get_settings(redis_url=None))
    assert memory.kind == "memory" and await memory.ping()
    await memory.aclose()
    redis_backends = await open_backends(get_settings(redis_url=own_redis.url, redis_timeout_ms=100))
    try:
        assert redis_backends.kind == "redis" and await redis_backends.ping()
        own_redis.stop()
        assert not await redis_backends.ping()
        own_redis.start()
        assert await redis_backends.ping()
    finally:
        await redis_backends.aclose()
