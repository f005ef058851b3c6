"""Quota accuracy, run against the in-process backend and Redis (``backend_kind``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.cache import EffectiveLimits, QuotaLimiter, QuotaTicket, ScopeLimits
from gateway.config.quotas import QuotaConfig, QuotaTier
from gateway.errors import QuotaExceeded, RateLimited
from gateway.security.principal import Principal
from tests.integration.cache_fixtures import *  # noqa: F403 - fixtures
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

LimiterFactory = Callable[[QuotaConfig], QuotaLimiter]
ALICE = Principal(user_id="alice", api_key_id="k-alice", tier="free")


def one_scope(**limits: float | None) -> EffectiveLimits:
    return EffectiveLimits((ScopeLimits("key:k-alice", **limits),))  # type: ignore[arg-type]


async def reserve(
    limiter: QuotaLimiter, rid: str, limits: EffectiveLimits, tokens: int = 10, cost: float = 0.0
) -> QuotaTicket:
    return await limiter.check_and_reserve(
        request_id=rid, principal=ALICE, estimated_tokens=tokens, estimated_cost_usd=cost, limits=limits
    )


async def test_rpm_exact_and_headers(limiter_factory: LimiterFactory) -> None:
    limiter = limiter_factory(QuotaConfig())
    limits = one_scope(rpm=5, tpm=10_000)
    for i in range(5):
        ticket = await reserve(limiter, f"r{i}", limits, tokens=100)
        h = ticket.headers()
        assert h["x-ratelimit-limit-requests"] == "5"
        assert h["x-ratelimit-remaining-requests"] == str(4 - i)
        assert h["x-ratelimit-limit-tokens"] == "10000"
        assert h["x-ratelimit-remaining-tokens"] == str(10_000 - 100 * (i + 1))
        assert h["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(RateLimited) as err:
        await reserve(limiter, "r5", limits)
    exc = err.value
    assert not isinstance(exc, QuotaExceeded)
    assert exc.status_code == 429 and exc.code == "rate_limit_exceeded"
    assert 55 <= int(exc.headers["retry-after"]) <= 60
    assert exc.headers["x-ratelimit-remaining-requests"] == "0"


async def test_rpm_counts_every_scope_atomically(limiter_factory: LimiterFactory) -> None:
    """A refusal by one scope must not count the request in the others."""
    limiter = limiter_factory(QuotaConfig())
    limits = EffectiveLimits((ScopeLimits("key:k1", rpm=10), ScopeLimits("user:u1", rpm=2)))
    await reserve(limiter, "a", limits)
    await reserve(limiter, "b", limits)
    with pytest.raises(RateLimited):
        await reserve(limiter, "c", limits)
    usage = await limiter.usage(principal_scope="key:k1", limits=limits.scopes[0])
    assert usage["requests_per_minute"]["used"] == 2
    assert usage["requests_per_minute"]["remaining"] == 8


async def test_tpm_reserve_and_settle(limiter_factory: LimiterFactory) -> None:
    limiter = limiter_factory(QuotaConfig())
    limits = one_scope(tpm=1000)
    first = await reserve(limiter, "t1", limits, tokens=600)
    with pytest.raises(RateLimited) as err:
        await reserve(limiter, "t2", limits, tokens=600)
    assert "tokens per minute" in err.value.message
    assert 1 <= int(err.value.headers["retry-after"]) <= 120
    await limiter.settle(first, actual_tokens=100, actual_cost_usd=0.0)  # frees 500
    second = await reserve(limiter, "t2", limits, tokens=600)
    assert second.headers()["x-ratelimit-remaining-tokens"] == "300"


async def test_tokens_per_day_reserve_settle(limiter_factory: LimiterFactory) -> None:
    limiter = limiter_factory(QuotaConfig())
    limits = one_scope(tokens_per_day=1000)
    t1 = await reserve(limiter, "d1", limits, tokens=700)
    with pytest.raises(RateLimited) as err:
        await reserve(limiter, "d2", limits, tokens=400)
    assert "tokens per day" in err.value.message
    await limiter.settle(t1, actual_tokens=500, actual_cost_usd=0.0)
    await reserve(limiter, "d2", limits, tokens=400)  # 500 settled + 400 reserved
    usage = await limiter.usage(principal_scope="key:k-alice", limits=limits.scopes[0])
    assert usage["tokens_per_day"]["settled"] == 500
    assert usage["tokens_per_day"]["reserved"] == 400
    assert usage["tokens_per_day"]["remaining"] == 100


async def test_budget_under_concurrency_cannot_overspend(limiter_factory: LimiterFactory) -> None:
    limiter = limiter_factory(QuotaConfig())
    limits = one_scope(monthly_budget_usd=1.0)

    async def attempt(i: int) -> QuotaTicket | None:
        try:
            return await reserve(limiter, f"b{i}", limits, cost=0.30)
        except QuotaExceeded as exc:
            assert exc.code == "insufficient_quota" and exc.status_code == 429
            return None

    tickets = [t for t in await asyncio.gather(*(attempt(i) for i in range(20))) if t is not None]
    assert len(tickets) == 3  # 3 × 0.30 ≤ 1.00 < 4 × 0.30
    await asyncio.gather(*(limiter.settle(t, actual_tokens=10, actual_cost_usd=0.10) for t in tickets))
    # 0.30 spent: two more worst-case reservations fit, the third does not
    more = [t for t in await asyncio.gather(*(attempt(100 + i) for i in range(10))) if t is not None]
    assert len(more) == 2
    usage = await limiter.usage(principal_scope="key:k-alice", limits=limits.scopes[0])
    assert usage["monthly_budget_usd"]["used"] == pytest.approx(0.90)
    assert usage["monthly_budget_usd"]["used"] <= 1.0


async def test_expired_reservations_are_released(limiter_factory: LimiterFactory) -> None:
    limiter = limiter_factory(QuotaConfig(reservation_ttl_s=1))
    limits = one_scope(tokens_per_day=1000, monthly_budget_usd=1.0)
    await reserve(limiter, "crashed", limits, tokens=800, cost=0.9)  # never settled
    with pytest.raises(RateLimited):
        await reserve(limiter, "next", limits, tokens=800, cost=0.05)

    async def admitted() -> bool:
        try:
            await reserve(limiter, "next", limits, tokens=800, cost=0.9)
        except RateLimited:
            return False  # a refusal reserves nothing
        return True

    await eventually(admitted, "the crashed request's reservation expires (reservation_ttl_s=1)")
    usage = await limiter.usage(principal_scope="key:k-alice", limits=limits.scopes[0])
    assert usage["tokens_per_day"]["reserved"] == 800
    assert usage["pending_reservations"] == 1


async def test_settle_is_idempotent(limiter_factory: LimiterFactory) -> None:
    limiter = limiter_factory(QuotaConfig())
    limits = one_scope(tokens_per_day=10_000, monthly_budget_usd=5.0)
    ticket = await reserve(limiter, "once", limits, tokens=100, cost=0.5)
    await limiter.settle(ticket, actual_tokens=80, actual_cost_usd=0.4)
    await limiter.settle(ticket, actual_tokens=80, actual_cost_usd=0.4)
    clone = QuotaTicket("once", ticket.scopes, 100, 0.5, minute=ticket.minute)  # e.g. a retried settle
    await limiter.settle(clone, actual_tokens=999, actual_cost_usd=3.0)
    usage = await limiter.usage(principal_scope="key:k-alice", limits=limits.scopes[0])
    assert usage["tokens_per_day"]["used"] == 80
    assert usage["monthly_budget_usd"]["used"] == pytest.approx(0.4)
    assert usage["pending_reservations"] == 0


async def test_duplicate_request_id_is_not_counted_twice(limiter_factory: LimiterFactory) -> None:
    limiter = limiter_factory(QuotaConfig())
    limits = one_scope(rpm=2, tokens_per_day=1000)
    await reserve(limiter, "dup", limits, tokens=400)
    await reserve(limiter, "dup", limits, tokens=400)
    usage = await limiter.usage(principal_scope="key:k-alice", limits=limits.scopes[0])
    assert usage["requests_per_minute"]["used"] == 1
    assert usage["tokens_per_day"]["reserved"] == 400


async def test_limits_from_tiers_and_overrides(limiter_factory: LimiterFactory) -> None:
    config = QuotaConfig(tiers={"free": QuotaTier(rpm=3, tpm=1000), "pro": QuotaTier(rpm=100)})
    limiter = limiter_factory(config)
    limits = limiter.limits_for(ALICE, user_override=QuotaTier(rpm=1))
    assert [s.scope for s in limits.scopes] == ["key:k-alice", "user:alice"]
    assert limits.scopes[0].rpm == 3 and limits.scopes[1].rpm == 1
    await reserve(limiter, "o1", limits)
    with pytest.raises(RateLimited) as err:
        await reserve(limiter, "o2", limits)
    assert "on this user" in err.value.message
    keyed = Principal(user_id="bob", api_key_id="k-bob", tier="pro", rpm_limit=7)
    scoped = limiter.limits_for(keyed, key_override=QuotaTier(tpm=50))
    assert scoped.scopes[0] == ScopeLimits("key:k-bob", rpm=7, tpm=50)
    assert scoped.scopes[1] == ScopeLimits("user:bob", rpm=100)
    unlimited = limiter.limits_for(Principal(user_id="x", tier="enterprise"))
    assert unlimited.scopes == ()
    ticket = await limiter.check_and_reserve(
        request_id="u", principal=ALICE, estimated_tokens=1, estimated_cost_usd=0, limits=unlimited
    )
    assert ticket.headers() == {}


async def test_settle_soon_batches_exactly_once_and_aclose_drains(limiter_factory: LimiterFactory) -> None:
    """Settlements queued off the request path go out together (one round trip on Redis), each once per
    request id — a duplicate in the same batch changes nothing — and ``aclose`` sends what is queued."""
    limiter = limiter_factory(QuotaConfig())
    limits = one_scope(tokens_per_day=100_000, monthly_budget_usd=100.0)
    tickets = [await reserve(limiter, f"soon{i}", limits, tokens=500, cost=1.0) for i in range(50)]
    for ticket in tickets:
        await limiter.settle_soon(ticket, actual_tokens=10, actual_cost_usd=0.01)
    twin = QuotaTicket("soon0", tickets[0].scopes, 500, 1.0, minute=tickets[0].minute)
    await limiter.settle_soon(twin, actual_tokens=999, actual_cost_usd=9.0)
    await limiter.aclose()
    usage = await limiter.usage(principal_scope="key:k-alice", limits=limits.scopes[0])
    assert usage["tokens_per_day"]["settled"] == 500
    assert usage["pending_reservations"] == 0
    assert usage["monthly_budget_usd"]["used"] == pytest.approx(0.50)
    # after aclose a settlement still lands (inline)
    late = await reserve(limiter, "late", limits, tokens=500, cost=1.0)
    await limiter.settle_soon(late, actual_tokens=20, actual_cost_usd=0.0)
    usage = await limiter.usage(principal_scope="key:k-alice", limits=limits.scopes[0])
    assert usage["tokens_per_day"]["settled"] == 520 and usage["pending_reservations"] == 0


async def test_settle_soon_reloads_scripts_after_a_flush(backend_redis: object, key_prefix: str) -> None:
    """A batch sent after Redis lost its scripts (restart, SCRIPT FLUSH) loads them and settles."""
    from redis.asyncio import Redis

    from gateway.cache.quota_backends import RedisQuotaBackend

    if not isinstance(backend_redis, Redis):
        pytest.skip("Redis only")
    limiter = QuotaLimiter(RedisQuotaBackend(backend_redis, prefix=key_prefix), QuotaConfig())
    limits = one_scope(tokens_per_day=100_000)
    tickets = [await reserve(limiter, f"flushed{i}", limits, tokens=100) for i in range(3)]
    await backend_redis.script_flush()
    for ticket in tickets:
        await limiter.settle_soon(ticket, actual_tokens=7, actual_cost_usd=0.0)
    await limiter.aclose()
    usage = await limiter.usage(principal_scope="key:k-alice", limits=limits.scopes[0])
    assert usage["tokens_per_day"]["settled"] == 21 and usage["pending_reservations"] == 0
