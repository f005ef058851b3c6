"""Response cache behaviour, run against the in-process store and Redis (``backend_kind``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gateway.cache import CachedEntry, ResponseCache, cache_key
from tests.integration.cache_fixtures import *  # noqa: F403 - fixtures

CacheFactory = Callable[[], ResponseCache]


def _entry(text: str = "Hello!") -> CachedEntry:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    return CachedEntry(
        response={
            "id": "chatcmpl-abc",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": usage,
        },
        model_served="gpt-4o-mini",
        usage=usage,
        provider="openai",
    )


REQ: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


async def test_miss_then_hit_roundtrip(cache_factory: CacheFactory) -> None:
    cache = cache_factory()
    key = cache_key(REQ, route="gpt-4o-mini", tenant="u1")
    assert await cache.get(key) is None
    await cache.set(key, _entry(), ttl_s=30)
    hit = await cache.get(key)
    assert hit is not None
    assert hit.response == _entry().response
    assert hit.model_served == "gpt-4o-mini"
    assert hit.usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


async def test_entries_expire(cache_factory: CacheFactory) -> None:
    cache = cache_factory()
    await cache.set("k-expire", _entry(), ttl_s=0.15)
    assert await cache.get("k-expire") is not None
    await asyncio.sleep(0.3)
    assert await cache.get("k-expire") is None


async def test_tenant_isolation_and_shared_models(cache_factory: CacheFactory) -> None:
    cache = cache_factory()
    k_alice = cache_key(REQ, route="r", tenant="alice")
    k_bob = cache_key(REQ, route="r", tenant="bob")
    assert k_alice != k_bob
    await cache.set(k_alice, _entry("alice's"), ttl_s=30)
    assert await cache.get(k_bob) is None
    shared_a = cache_key(REQ, route="r", tenant="alice", shared=True)
    shared_b = cache_key(REQ, route="r", tenant="bob", shared=True)
    assert shared_a == shared_b
    await cache.set(shared_a, _entry("shared"), ttl_s=30)
    got = await cache.get(shared_b)
    assert got is not None and got.response["choices"][0]["message"]["content"] == "shared"


async def test_corrupt_entry_is_a_miss_not_an_error(cache_factory: CacheFactory) -> None:
    cache = cache_factory()
    await cache.store.set("k-corrupt", b"not json", 30)
    assert await cache.get("k-corrupt") is None


@pytest.mark.parametrize("instances", [1, 2])
async def test_single_flight_twenty_concurrent_misses_one_producer(
    cache_factory: CacheFactory, instances: int
) -> None:
    """20 identical concurrent misses → exactly one upstream call. With 2 instances over one
    store the second behaves like another process (Redis lock + polling)."""
    caches = [cache_factory() for _ in range(instances)]
    if instances > 1 and not caches[0].store.distributed:
        pytest.skip("the in-process store serves one process: one cache instance")
    key = cache_key(REQ, route="sf", tenant="u1")
    calls = 0

    async def request(cache: ResponseCache) -> str:
        nonlocal calls
        entry = await cache.get(key)
        if entry is None:
            async with cache.single_flight(key, wait_s=5) as flight:
                if flight:
                    calls += 1
                    await asyncio.sleep(0.1)  # the upstream call
                    entry = _entry("produced once")
                    await cache.set(key, entry, ttl_s=30)
                else:
                    entry = flight.entry or await cache.get(key)
        assert entry is not None
        return str(entry.response["choices"][0]["message"]["content"])

    results = await asyncio.gather(*(request(caches[i % instances]) for i in range(20)))
    assert calls == 1
    assert results == ["produced once"] * 20


@pytest.mark.parametrize("instances", [1, 2])
async def test_single_flight_leader_failure_releases_waiters(
    cache_factory: CacheFactory, instances: int
) -> None:
    caches = [cache_factory() for _ in range(instances)]
    if instances > 1 and not caches[0].store.distributed:
        pytest.skip("the in-process store serves one process: one cache instance")
    key = "k-leader-fails"
    outcomes: list[str] = []
    started = asyncio.get_running_loop().time()

    async def request(i: int) -> None:
        cache = caches[i % instances]
        try:
            async with cache.single_flight(key, wait_s=10) as flight:
                if flight:
                    await asyncio.sleep(0.05)
                    raise RuntimeError("upstream failed")
                outcomes.append("waiter-alone" if flight.entry is None else "waiter-hit")
        except RuntimeError:
            outcomes.append("leader-failed")

    await asyncio.gather(*(request(i) for i in range(6)))
    assert outcomes.count("leader-failed") == 1
    assert outcomes.count("waiter-alone") == 5
    # waiters were released by the failure, not by the 10 s bound
    assert asyncio.get_running_loop().time() - started < 3


async def test_single_flight_wait_is_bounded(cache_factory: CacheFactory) -> None:
    cache = cache_factory()
    key = "k-slow-leader"
    leader_in = asyncio.Event()
    release = asyncio.Event()

    async def leader() -> None:
        async with cache.single_flight(key, wait_s=5) as flight:
            assert flight
            leader_in.set()
            await release.wait()

    task = asyncio.create_task(leader())
    await leader_in.wait()
    t0 = asyncio.get_running_loop().time()
    async with cache.single_flight(key, wait_s=0.2) as flight:
        assert not flight and flight.entry is None
    assert asyncio.get_running_loop().time() - t0 < 1.5
    release.set()
    await task
    # after the leader left, the next caller leads again
    async with cache.single_flight(key, wait_s=1) as flight:
        assert flight
