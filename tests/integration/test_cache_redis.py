"""Response cache behaviour, run against the in-process store and Redis (``backend_kind``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gateway.cache import CachedEntry, ResponseCache, cache_key
from tests.integration.cache_fixtures import *  # noqa: F403 - fixtures
from tests.support.waiting import eventually

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

    async def expired() -> bool:
        return await cache.get("k-expire") is None

    await eventually(expired, "the entry expires (ttl 0.15 s)")


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


@pytest.mark.parametrize("writer", ["set", "set_behind"])
@pytest.mark.parametrize("instances", [1, 2])
async def test_single_flight_twenty_concurrent_misses_one_producer(
    cache_factory: CacheFactory, instances: int, writer: str
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
                    await getattr(cache, writer)(key, entry, ttl_s=30)
                else:
                    entry = flight.entry or await cache.get(key)
        assert entry is not None
        return str(entry.response["choices"][0]["message"]["content"])

    results = await asyncio.gather(*(request(caches[i % instances]) for i in range(20)))
    assert calls == 1
    assert results == ["produced once"] * 20
    for cache in caches:
        await cache.aclose()


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


class _HeldStore:
    """A store whose writes wait for ``release`` (or fail with ``fail``): the write behind in flight."""

    def __init__(self, inner: Any, *, fail: bool = False) -> None:
        self.inner = inner
        self.distributed = inner.distributed
        self.release = asyncio.Event()
        self.fail = fail

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def set_and_unlock(self, key: str, value: bytes, ttl_s: float, token: str) -> None:
        await self.release.wait()
        if self.fail:
            raise ConnectionError("redis went away")
        await self.inner.set_and_unlock(key, value, ttl_s, token)


def _redis_only(cache: ResponseCache) -> None:
    if not cache.store.distributed:
        pytest.skip("the in-process store is written inline: nothing is ever behind")


async def test_write_behind_answers_here_at_once_and_lands_by_aclose(cache_factory: CacheFactory) -> None:
    """The production store path: the answer is served from this process at once, the Redis write
    (and the single-flight unlock) goes out behind the response, and a graceful close waits for it."""
    from gateway.observability.metrics import CACHE_WRITES_BEHIND

    here, there = cache_factory(), cache_factory()
    _redis_only(here)
    held = _HeldStore(here.store)
    here = ResponseCache(held)  # type: ignore[arg-type]
    key = "k-behind"
    behind_before = CACHE_WRITES_BEHIND._value.get()
    async with here.single_flight(key, wait_s=5) as flight:
        assert flight
        await asyncio.wait_for(here.set_behind(key, _entry("fresh"), ttl_s=30), 1)
    assert CACHE_WRITES_BEHIND._value.get() == behind_before + 1
    got = await here.get(key)  # read-your-write in this process, before Redis has it
    assert got is not None and got.response["choices"][0]["message"]["content"] == "fresh"
    async with here.single_flight(key, wait_s=5) as again:
        assert not again and again.entry is not None  # no second upstream call for the same prompt
    assert await there.get(key) is None  # another process: not yet stored
    assert await there.store.locked(key)  # ... and the leader's lock still stands until it is

    closing = asyncio.ensure_future(here.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done()  # waits for the write behind
    held.release.set()
    await asyncio.wait_for(closing, 2)
    stored = await there.get(key)
    assert stored is not None and stored.response["choices"][0]["message"]["content"] == "fresh"
    assert not await there.store.locked(key)
    assert CACHE_WRITES_BEHIND._value.get() == behind_before
    assert await here.get(key) is not None  # now from Redis


async def test_write_behind_failure_is_counted_and_unlocks(cache_factory: CacheFactory) -> None:
    from gateway.observability.metrics import BACKEND_ERRORS

    first = cache_factory()
    _redis_only(first)
    held = _HeldStore(first.store, fail=True)
    here = ResponseCache(held)  # type: ignore[arg-type]
    errors = BACKEND_ERRORS.labels(operation="cache_set")._value.get()
    async with here.single_flight("k-behind-fails", wait_s=5) as flight:
        assert flight
        await here.set_behind("k-behind-fails", _entry(), ttl_s=30)
    held.release.set()
    await asyncio.wait_for(here.aclose(), 2)
    assert BACKEND_ERRORS.labels(operation="cache_set")._value.get() == errors + 1
    assert not await first.store.locked("k-behind-fails")  # released, so the next leader need not wait
    assert await first.get("k-behind-fails") is None
    assert await here.get("k-behind-fails") is None  # nothing served from memory once the write failed


async def test_write_behind_overrunning_close_is_cancelled(cache_factory: CacheFactory) -> None:
    first = cache_factory()
    _redis_only(first)
    here = ResponseCache(_HeldStore(first.store))  # type: ignore[arg-type]
    async with here.single_flight("k-behind-stuck", wait_s=5) as flight:
        assert flight
        await here.set_behind("k-behind-stuck", _entry(), ttl_s=30)
    await asyncio.wait_for(here.aclose(timeout_s=0.1), 2)
    assert not here._writes


async def test_write_behind_is_bounded(cache_factory: CacheFactory) -> None:
    """Past ``max_behind`` writes in flight, the next one is written inline (back-pressure)."""
    first = cache_factory()
    _redis_only(first)
    held = _HeldStore(first.store)
    here = ResponseCache(held, max_behind=2)  # type: ignore[arg-type]
    for i in range(2):
        async with here.single_flight(f"k-bound-{i}", wait_s=5):
            await here.set_behind(f"k-bound-{i}", _entry(), ttl_s=30)
    async with here.single_flight("k-bound-2", wait_s=5):
        inline = asyncio.ensure_future(here.set_behind("k-bound-2", _entry(), ttl_s=30))
        await asyncio.sleep(0.05)
        assert not inline.done()  # the third waits for its own write
        held.release.set()
        await asyncio.wait_for(inline, 2)
    await here.aclose()
    for i in range(3):
        assert await first.get(f"k-bound-{i}") is not None
