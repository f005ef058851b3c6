"""Fixtures and helpers for the cache/quota tests (import the fixtures you use into the test module).

``backend_kind`` is parametrised over the in-process and the Redis backend so one suite
runs against both. Redis tests use the shared server at 127.0.0.1:6379 under a unique key
prefix and delete their keys afterwards; tests that kill Redis start their own server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.cache import (
    MemoryQuotaBackend,
    MemoryResponseStore,
    QuotaLimiter,
    RedisQuotaBackend,
    RedisResponseStore,
    ResponseCache,
    make_redis,
)
from gateway.config.quotas import QuotaConfig
from tests.support.redis_proc import RedisProcess

__all__ = [  # the fixtures; test modules do ``from tests.integration.cache_fixtures import *``
    "backend_kind",
    "backend_redis",
    "backend_redis_url",
    "cache_factory",
    "key_prefix",
    "limiter_factory",
    "own_redis",
    "redis_client",
    "shared_redis_url",
]

SHARED_REDIS_URL = os.environ.get("PRISM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_reachable(url: str) -> bool:
    """Synchronous PING over a socket (fixtures may run inside an event loop)."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        address = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        with socket.create_connection(address, timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def delete_prefix(client: Redis, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for i in range(0, len(keys), 500):
        await client.delete(*keys[i : i + 500])


@pytest.fixture(scope="session")
def shared_redis_url() -> str:
    if not _redis_reachable(SHARED_REDIS_URL):
        pytest.skip(f"Redis not reachable at {SHARED_REDIS_URL}")
    return SHARED_REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    return f"prism-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(shared_redis_url: str, key_prefix: str) -> AsyncIterator[Redis]:
    client = make_redis(shared_redis_url, timeout_ms=1000)
    try:
        yield client
    finally:
        await delete_prefix(client, key_prefix)
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_redis_url(backend_kind: str, request: pytest.FixtureRequest) -> str | None:
    if backend_kind == "memory":
        return None
    return str(request.getfixturevalue("shared_redis_url"))


@pytest.fixture
async def backend_redis(backend_redis_url: str | None, key_prefix: str) -> AsyncIterator[Redis | None]:
    if backend_redis_url is None:
        yield None
        return
    client = make_redis(backend_redis_url, timeout_ms=1000)
    try:
        yield client
    finally:
        await delete_prefix(client, key_prefix)
        await client.aclose()


@pytest.fixture
def cache_factory(backend_redis: Redis | None, key_prefix: str) -> Callable[[], ResponseCache]:
    """Makes ResponseCaches over one shared store (Redis: several caches = several processes)."""
    if backend_redis is None:
        store = MemoryResponseStore(max_entries=1000, max_bytes=10_000_000)
        return lambda: ResponseCache(store)
    client = backend_redis
    return lambda: ResponseCache(RedisResponseStore(client, prefix=key_prefix))


@pytest.fixture
def limiter_factory(backend_redis: Redis | None, key_prefix: str) -> Callable[[QuotaConfig], QuotaLimiter]:
    if backend_redis is None:
        backend = MemoryQuotaBackend(prefix=key_prefix)
        return lambda config: QuotaLimiter(backend, config)
    client = backend_redis
    return lambda config: QuotaLimiter(RedisQuotaBackend(client, prefix=key_prefix), config)


class OwnRedis:
    """A private ``redis-server`` (no persistence) that a test may stop and restart on the same port
    (``tests/support/redis_proc.py``: its port is its own, checked by pid)."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server not installed")
        self._server = RedisProcess(workdir)
        self.port = self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._server.process

    def start(self) -> None:
        self._server.start()
        self.port = self._server.port

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "own-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def hammer_worker(
    url: str, prefix: str, rpm: int, attempts: int, proc_index: int, start_at: float, out: Any
) -> None:
    """Run in a separate OS process: fire ``attempts`` reservations at one API key, report results."""
    from gateway.cache.quota import EffectiveLimits, QuotaLimiter, ScopeLimits
    from gateway.errors import RateLimited
    from gateway.security.principal import Principal

    async def run() -> tuple[int, list[int]]:
        client = make_redis(url, timeout_ms=2000)
        limiter = QuotaLimiter(RedisQuotaBackend(client, prefix=prefix), QuotaConfig())
        principal = Principal(user_id="hammer", api_key_id="k-hammer")
        limits = EffectiveLimits((ScopeLimits("key:k-hammer", rpm=rpm),))
        allowed = 0
        retry_after: list[int] = []

        async def one(i: int) -> None:
            nonlocal allowed
            try:
                await limiter.check_and_reserve(
                    request_id=f"p{proc_index}-{i}",
                    principal=principal,
                    estimated_tokens=10,
                    estimated_cost_usd=0.0,
                    limits=limits,
                )
                allowed += 1
            except RateLimited as exc:
                retry_after.append(int(exc.headers["retry-after"]))

        await client.ping()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(one(i) for i in range(attempts)))
        await client.aclose()
        return allowed, retry_after

    out.put((proc_index, *asyncio.run(run())))
