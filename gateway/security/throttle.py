"""Throttling of the public auth routes (login, refresh, registration), cluster-wide.

Every attempt is *reserved* before the password is checked, atomically across every bucket it
counts against (one Lua script in Redis, or one critical section in process), and released when it
turns out to be a success. So N workers on M replicas racing on one account can never let more than
the limit of wrong guesses through: the (limit+1)-th concurrent attempt is refused before its
password is even hashed.

Login buckets (window ``login_throttle_window_s``):

- ``(account, address)``: ``login_max_failures_per_account`` — the guesses one address gets
  against one account;
- ``address``: ``login_max_failures_per_ip`` — one address spraying many accounts;
- ``account``: ``login_max_failures_per_account_total`` (high) — a distributed run against one
  account. Exhausting it refuses only addresses that already failed in the window; an address with
  a clean record (the owner at home, on the phone) may still try. A lockout by strangers therefore
  never keeps the owner out, while a botnet pays one fresh address per guess beyond the limit.

A success clears its ``(account, address)`` bucket and does not count anywhere. Refresh counts
failures per address; registration counts every attempt per address. Without Redis (the embedded
default) the same rules run in process; when Redis fails mid-flight, the call falls back to the
in-process windows (counted in ``prism_auth_throttle_total{outcome="fallback"}``) rather than
refusing every login. Account names are hashed before they become keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.errors import RateLimited
from gateway.security.client_address import bucket as address_bucket

log = structlog.get_logger(__name__)

Action = Literal["login", "refresh", "register"]
THROTTLE = Counter(
    "prism_auth_throttle",
    "Public auth attempts by the throttle: allowed, refused, or fallback (Redis failed, in-process used)",
    ["action", "outcome"],
)
_MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    limit: int
    soft: bool = False
    """Refuse at the limit only when the request's address bucket (``guard``) has failures too."""


class AttemptStore(Protocol):
    async def acquire(
        self, buckets: Sequence[Bucket], *, window_s: float, member: str, guard: int | None
    ) -> float | None:
        """Reserve one attempt in every bucket; None when admitted, else seconds to wait."""
        ...

    async def release(self, keys: Sequence[str], *, member: str) -> None: ...

    async def clear(self, key: str) -> None: ...


class MemoryAttemptStore:
    """Sliding windows in process: the embedded default and the fallback when Redis fails."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._events: dict[str, deque[tuple[float, str]]] = {}

    def _trim(self, key: str, now: float, window_s: float) -> deque[tuple[float, str]]:
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0][0] <= now - window_s:
            events.popleft()
        return events

    async def acquire(
        self, buckets: Sequence[Bucket], *, window_s: float, member: str, guard: int | None
    ) -> float | None:
        now = self._clock()
        windows = [self._trim(b.key, now, window_s) for b in buckets]
        wait: float | None = None
        for b, events in zip(buckets, windows, strict=True):
            count = len(events)
            if count < b.limit or b.limit <= 0:
                continue
            if b.soft and guard is not None and not windows[guard]:
                continue
            until = events[count - b.limit][0] + window_s - now
            wait = until if wait is None else max(wait, until)
        if wait is not None:
            return max(wait, 0.001)
        for b, events in zip(buckets, windows, strict=True):
            events.append((now, member))
            self._events[b.key] = events
        if len(self._events) > _MAX_KEYS:  # a spray of random accounts: drop the oldest keys
            for stale in list(self._events)[: _MAX_KEYS // 10]:
                del self._events[stale]
        return None

    async def release(self, keys: Sequence[str], *, member: str) -> None:
        for key in keys:
            events = self._events.get(key)
            if events:
                kept = deque(e for e in events if e[1] != member)
                if kept:
                    self._events[key] = kept
                else:
                    del self._events[key]

    async def clear(self, key: str) -> None:
        self._events.pop(key, None)


# KEYS: bucket keys. ARGV: (unused), window_ms, member, guard (1-based, 0 = none), then one limit per
# key (negative = soft). Returns -1 when admitted (the member is added to every key), else the wait
# in ms until the binding bucket falls below its limit. The clock is Redis's own (TIME): one clock
# for every replica, whatever their skew.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
local guard = tonumber(ARGV[4])
local counts = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  counts[i] = redis.call('ZCARD', key)
end
local wait = -1
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[4 + i])
  local soft = limit < 0
  if soft then limit = -limit end
  if limit > 0 and counts[i] >= limit and ((not soft) or guard == 0 or counts[guard] > 0) then
    local entry = redis.call('ZRANGE', key, counts[i] - limit, counts[i] - limit, 'WITHSCORES')
    local w = tonumber(entry[2]) + window - now
    if w < 1 then w = 1 end
    if w > window then w = window end
    if w > wait then wait = w end
  end
end
if wait >= 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return -1
"""


class RedisAttemptStore:
    """The same windows as sorted sets in Redis, shared by every worker and replica.

    All keys of one attempt go to one script call: a single Redis (or Sentinel) deployment, as the
    quotas use; Redis Cluster would need the keys under one hash tag."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._acquire = redis.register_script(_ACQUIRE)

    async def acquire(
        self, buckets: Sequence[Bucket], *, window_s: float, member: str, guard: int | None
    ) -> float | None:
        args: list[str | int] = [0, int(window_s * 1000), member, 0 if guard is None else guard + 1]
        args.extend(-b.limit if b.soft else b.limit for b in buckets)
        result = int(await self._acquire(keys=[b.key for b in buckets], args=args))
        return None if result < 0 else result / 1000

    async def release(self, keys: Sequence[str], *, member: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, member)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        await self.redis.delete(key)


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    window_s: float = 900.0
    per_account_address: int = 5
    per_address: int = 50
    per_account: int = 100
    refresh_per_address: int = 30
    register_per_address: int = 10
    register_window_s: float = 3600.0


@dataclass(slots=True)
class Attempt:
    """A reserved attempt: ``succeeded`` releases what a success must not count."""

    throttle: AuthThrottle
    store: AttemptStore
    member: str
    release_keys: tuple[str, ...]
    clear_key: str | None

    async def succeeded(self) -> None:
        try:
            await self.store.release(self.release_keys, member=self.member)
            if self.clear_key is not None:
                await self.store.clear(self.clear_key)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("auth_throttle_release_failed", error=type(exc).__name__)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class AuthThrottle:
    def __init__(
        self,
        *,
        limits: ThrottleLimits,
        redis: Redis | None = None,
        prefix: str = "prism",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.prefix = f"{prefix}:auth"
        self.memory = MemoryAttemptStore(clock)
        self.redis_store = RedisAttemptStore(redis) if redis is not None else None

    async def _acquire(
        self, action: Action, buckets: Sequence[Bucket], *, window_s: float, guard: int | None
    ) -> tuple[AttemptStore, str]:
        member = secrets.token_hex(8)
        store: AttemptStore = self.redis_store or self.memory
        try:
            async with asyncio.timeout(2.0):
                wait = await store.acquire(buckets, window_s=window_s, member=member, guard=guard)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("auth_throttle_redis_failed", action=action, error=type(exc).__name__)
            THROTTLE.labels(action=action, outcome="fallback").inc()
            store = self.memory
            wait = await store.acquire(buckets, window_s=window_s, member=member, guard=guard)
        if wait is not None:
            THROTTLE.labels(action=action, outcome="refused").inc()
            log.info("auth_throttled", action=action)
            raise RateLimited(
                "Too many attempts; try again later",
                code=f"{action}_throttled",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        THROTTLE.labels(action=action, outcome="allowed").inc()
        return store, member

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def login(self, *, account: str, address: str | None) -> Attempt:
        """Reserve a login attempt (raises ``RateLimited`` with Retry-After when over a limit)."""
        limits = self.limits
        account_id = _digest(account)
        buckets = [Bucket(self._key("login", "acct", account_id), limits.per_account, soft=True)]
        guard: int | None = None
        pair_key: str | None = None
        if address:
            addr = address_bucket(address)
            pair_key = self._key("login", "pair", account_id, addr)
            buckets.append(Bucket(pair_key, limits.per_account_address))
            buckets.append(Bucket(self._key("login", "addr", addr), limits.per_address))
            guard = 2
        store, member = await self._acquire("login", buckets, window_s=limits.window_s, guard=guard)
        return Attempt(self, store, member, tuple(b.key for b in buckets), pair_key)

    async def refresh(self, *, address: str | None) -> Attempt:
        """Reserve a refresh attempt; only failures count (``succeeded`` releases it)."""
        if not address:
            return Attempt(self, self.memory, "", (), None)
        key = self._key("refresh", "addr", address_bucket(address))
        buckets = [Bucket(key, self.limits.refresh_per_address)]
        store, member = await self._acquire("refresh", buckets, window_s=self.limits.window_s, guard=None)
        return Attempt(self, store, member, (key,), None)

    async def register(self, *, address: str | None) -> None:
        """Count a registration attempt, successful or not."""
        if not address:
            return
        key = self._key("register", "addr", address_bucket(address))
        buckets = [Bucket(key, self.limits.register_per_address)]
        await self._acquire("register", buckets, window_s=self.limits.register_window_s, guard=None)
