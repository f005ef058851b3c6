"""Retry budget, failure-rate circuits, deadlines from config, and breakers shared through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from gateway.cache.backends import make_redis
from gateway.config.routing import CircuitBreakerConfig, RetryConfig, parse_config
from gateway.errors import ProviderTimeout, ServerShuttingDown
from gateway.routing.circuit import CircuitBreakers, CircuitState, RetryBudget
from gateway.routing.shared_circuit import SharedCircuitBreakers
from gateway.services.drain import Drain


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_retry_budget_is_a_fraction_of_requests_with_a_floor() -> None:
    clock = Clock()
    budget = RetryBudget(clock=clock)
    config = RetryConfig(budget_ratio=0.2, budget_min_per_s=0.5, budget_window_s=10)
    for _ in range(100):
        budget.note_request("t", config)
    granted = sum(budget.try_retry("t", config) for _ in range(50))
    assert granted == 20
    clock.now += 11  # the window slid past: only the floor (0.5/s * 10 s) remains
    assert sum(budget.try_retry("t", config) for _ in range(50)) == 5


def test_circuit_opens_on_failure_rate_and_half_opens() -> None:
    clock = Clock()
    config = CircuitBreakerConfig(failure_threshold=100, failure_rate=0.5, min_requests=10, cooldown_s=5)
    breakers = CircuitBreakers(config, clock=clock)
    for _ in range(5):
        breakers.record_success("t")
        assert breakers.state("t") is CircuitState.CLOSED
        breakers.record_failure("t")
    assert breakers.state("t") is CircuitState.OPEN
    assert not breakers.allow("t")
    clock.now += 5
    assert breakers.allow("t") and not breakers.allow("t")  # one probe at a time
    breakers.record_failure("t")
    assert breakers.state("t") is CircuitState.OPEN and breakers.snapshot()["t"]["cooldown_s"] == 10


def test_least_recently_failed_prefers_never_failed_then_oldest() -> None:
    clock = Clock()
    breakers = CircuitBreakers(CircuitBreakerConfig(failure_threshold=1), clock=clock)
    breakers.record_failure("a")
    clock.now += 1
    breakers.record_failure("b")
    assert breakers.least_recently_failed(["b", "a"]) == "a"
    assert breakers.least_recently_failed(["b", "a", "c"]) == "c"


def test_deadline_for_alias_model_header() -> None:
    config = parse_config(
        """
models:
  m: {provider: mock, deadline_s: 7}
  n: {provider: mock}
aliases:
  fast: {target: m, deadline_s: 3}
  plain: {target: m}
retry: {deadline_s: 20, max_deadline_s: 60}
"""
    )
    assert config.deadline_for("fast") == 3
    assert config.deadline_for("plain") == 7
    assert config.deadline_for("m") == 7
    assert config.deadline_for("n") == 20
    assert config.deadline_for("n", 5) == 5
    assert config.deadline_for("n", 600) == 60


async def _redis() -> aioredis.Redis:
    client = aioredis.Redis(socket_timeout=0.5)
    try:
        await client.ping()
    except Exception:
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    return client


async def _eventually(check: Callable[[], bool], what: str, within_s: float = 15.0) -> None:
    """Wait until the replicas' sync loops (every 50 ms) make ``check`` true; a loaded CI machine
    may take a few rounds, so the bound is generous and only a failure waits it out."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within_s}s: {what}"
        await asyncio.sleep(0.02)


async def _eventually_async(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within_s}s: {what}"
        await asyncio.sleep(0.02)


async def test_shared_breakers_open_probe_and_close_across_replicas() -> None:
    prefix = f"test-cb-{uuid.uuid4().hex[:8]}"
    config = CircuitBreakerConfig(failure_threshold=3, cooldown_s=2.0, sync_interval_s=0.05)
    a = SharedCircuitBreakers(config, await _redis(), prefix=prefix)
    b = SharedCircuitBreakers(config, await _redis(), prefix=prefix)
    for breakers in (a, b):
        breakers.reconfigure(config, targets={"t"})
        breakers.start()
    try:
        for _ in range(3):
            a.record_failure("t")
        assert a.state("t") is CircuitState.OPEN
        await _eventually(lambda: b.state("t") is CircuitState.OPEN, "b sees a's open circuit")
        assert not b.allow("t")
        assert (await b.shared_snapshot())["t"]["state"] == "open"
        await _eventually(  # cooled down: a sync round lets one replica claim the probe
            lambda: "t" in a._probe_claims or "t" in b._probe_claims, "one replica claims the probe", 15.0
        )
        granted = [a.allow("t"), b.allow("t")]
        assert granted.count(True) == 1, granted  # exactly one replica probes
        (a if granted[0] else b).record_success("t")
        await _eventually(
            lambda: a.state("t") is CircuitState.CLOSED and b.state("t") is CircuitState.CLOSED,
            "the probe's success closes the circuit on both replicas",
        )
        # Consecutive failures counted across replicas open the circuit on both.
        a.record_failure("t")
        b.record_failure("t")
        consec = f"{prefix}:cb:t:consec"

        async def counted() -> bool:
            return int(await a.redis.get(consec) or 0) == 2

        await _eventually_async(counted, "both failures reach the shared count")
        a.record_failure("t")
        await _eventually(
            lambda: a.state("t") is CircuitState.OPEN and b.state("t") is CircuitState.OPEN,
            "three failures on two replicas open the circuit on both",
        )
        assert await a.shared_reset("t")
        await _eventually(lambda: b.state("t") is CircuitState.CLOSED, "a shared reset reaches b")
    finally:
        await a.aclose()
        await b.aclose()


async def test_shared_breakers_fall_back_to_local_when_redis_is_down() -> None:
    config = CircuitBreakerConfig(failure_threshold=2, cooldown_s=0.2, sync_interval_s=0.05)
    dead = make_redis("redis://127.0.0.1:1/0", timeout_ms=100)
    breakers = SharedCircuitBreakers(config, dead, prefix="none")
    breakers.reconfigure(config, targets={"t"})
    breakers.start()
    try:
        breakers.record_failure("t")
        breakers.record_failure("t")
        await _eventually(lambda: not breakers.healthy, "the sync loop notices Redis is down")
        await _eventually(lambda: breakers.state("t") is CircuitState.HALF_OPEN, "the cooldown passes")
        assert breakers.allow("t")  # local probe after the cooldown
        breakers.record_success("t")
        assert breakers.state("t") is CircuitState.CLOSED
    finally:
        await breakers.aclose()


async def _ticks(delays: list[float]) -> AsyncIterator[int]:
    for i, delay in enumerate(delays):
        await asyncio.sleep(delay)
        yield i


async def test_drain_guard_idle_timeout_and_expiry() -> None:
    """One timeout per stream, re-armed per item: a stall is a ProviderTimeout; an expiring drain ends a
    stream that waits on its upstream at once with ServerShuttingDown, and the relay can still send its
    error event afterwards (no cancellation leaks into the task)."""
    drain = Drain()
    assert [i async for i in drain.guard(_ticks([0.01] * 5), 0.5, "t")] == [0, 1, 2, 3, 4]
    seen: list[int] = []
    with pytest.raises(ProviderTimeout):
        async for i in drain.guard(_ticks([0.01, 0.01, 5.0]), 0.2, "t"):
            seen.append(i)
    assert seen == [0, 1] and drain.open_streams == 0

    outcome: list[str] = []

    async def relay() -> None:
        try:
            async for _ in drain.guard(_ticks([0.01] + [0.05] * 100), 30.0, "t"):
                await asyncio.sleep(0.01)  # the client write, with the timeout disarmed
        except ServerShuttingDown:
            await asyncio.sleep(0.01)  # sending the error event still works
            outcome.append("shutting_down")

    task = asyncio.create_task(relay())
    await _eventually(lambda: drain.open_streams == 1, "the relay's stream is open")
    started = asyncio.get_running_loop().time()
    drain.begin(0.1)
    await task
    assert outcome == ["shutting_down"] and task.cancelling() == 0
    assert asyncio.get_running_loop().time() - started < 0.3
