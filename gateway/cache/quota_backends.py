"""Quota state stores: one Lua round trip on Redis, the same algorithm in-process.

Both implement :class:`QuotaBackend`; :mod:`gateway.cache.quota` turns their raw results
into tickets, headers and errors. Amounts are integers: tokens, and money in micro-USD.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from gateway.cache.pipelined import LuaScript, PipelinedRedis

WINDOW_MS = 60_000
DAY_MS = 86_400_000
_LUA_DIR = Path(__file__).parent / "lua"


@dataclass(frozen=True, slots=True)
class ScopeArgs:
    """One scope's Redis prefix and limits; ``-1`` means unlimited."""

    prefix: str
    rpm: int
    tpm: int
    tpd: int
    budget_micro: int


@dataclass(frozen=True, slots=True)
class ReserveArgs:
    request_id: str
    est_tokens: int
    est_micro_usd: int
    ttl_ms: int
    day_id: str
    month_id: str
    next_month_ms: int
    scopes: tuple[ScopeArgs, ...]


@dataclass(frozen=True, slots=True)
class ScopeStats:
    rpm_used: int
    rpm_reset_ms: int
    tpm_used: int
    tpm_reset_ms: int


@dataclass(frozen=True, slots=True)
class ReserveResult:
    status: int  # 1 reserved, 0 refused, 2 duplicate request id
    reason: str  # requests | tokens | tokens_per_day | monthly_budget | ""
    scope_index: int
    retry_ms: int
    minute: int
    stats: tuple[ScopeStats, ...]


@dataclass(frozen=True, slots=True)
class SettleArgs:
    request_id: str
    actual_tokens: int
    actual_micro_usd: int
    est_tokens: int
    minute: int  # -1: no reservation was made (fail-open ticket)
    day_id: str
    month_id: str
    done_ttl_ms: int
    prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UsageResult:
    rpm_used: int
    rpm_reset_ms: int
    tpm_used: int
    tpm_reset_ms: int
    tokens_today: int
    pending_tokens: int
    micro_usd_month: int
    pending_micro_usd: int
    reservations: int


class QuotaBackend(Protocol):
    base_prefix: str

    async def reserve(self, args: ReserveArgs) -> ReserveResult: ...

    async def settle(self, args: SettleArgs) -> bool: ...

    async def settle_many(self, batch: list[SettleArgs]) -> None:
        """Several settlements in one round trip (each still exactly once per request id)."""
        ...

    async def usage(self, prefix: str, day_id: str, month_id: str) -> UsageResult: ...


SETTLE_BATCH_TIMEOUT_S = 2.0


def _int(value: Any) -> int:
    if isinstance(value, bytes):
        return int(value)
    return int(value)


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_reserve(raw: list[Any]) -> ReserveResult:
    n = _int(raw[5])
    stats = tuple(
        ScopeStats(_int(raw[6 + 4 * i]), _int(raw[7 + 4 * i]), _int(raw[8 + 4 * i]), _int(raw[9 + 4 * i]))
        for i in range(n)
    )
    return ReserveResult(_int(raw[0]), _str(raw[1]), _int(raw[2]), _int(raw[3]), _int(raw[4]), stats)


class RedisQuotaBackend:
    """Lua scripts registered once (``EVALSHA``; reloaded after a Redis restart). With ``fast`` (a
    :class:`PipelinedRedis` on the same server) the per-request scripts go through it; redis-py
    serves the rest, and everything when the URL is not plain ``redis://``."""

    def __init__(self, redis: Redis, *, prefix: str = "prism", fast: PipelinedRedis | None = None) -> None:
        self.base_prefix = prefix
        self._redis = redis
        self._fast = fast
        self._reserve_lua = LuaScript((_LUA_DIR / "quota_reserve.lua").read_text())
        self._settle_lua = LuaScript((_LUA_DIR / "quota_settle.lua").read_text())
        self._reserve = redis.register_script(self._reserve_lua.source)
        self._settle = redis.register_script(self._settle_lua.source)
        self._usage = redis.register_script((_LUA_DIR / "quota_usage.lua").read_text())

    async def reserve(self, args: ReserveArgs) -> ReserveResult:
        argv: list[str | int] = [
            args.request_id,
            args.est_tokens,
            args.est_micro_usd,
            args.ttl_ms,
            args.day_id,
            args.month_id,
            args.next_month_ms,
            len(args.scopes),
        ]
        for s in args.scopes:
            argv.extend((s.prefix, s.rpm, s.tpm, s.tpd, s.budget_micro))
        if self._fast is not None:
            raw = await self._fast.evalsha(self._reserve_lua, (), argv)
        else:
            raw = await self._reserve(keys=[], args=argv)
        return parse_reserve(list(raw))

    def _settle_argv(self, args: SettleArgs) -> list[str | int]:
        return [
            self.base_prefix,
            args.request_id,
            args.actual_tokens,
            args.actual_micro_usd,
            args.est_tokens,
            args.minute,
            args.day_id,
            args.month_id,
            args.done_ttl_ms,
            len(args.prefixes),
            *args.prefixes,
        ]

    async def settle(self, args: SettleArgs) -> bool:
        if self._fast is not None:
            return bool(_int(await self._fast.evalsha(self._settle_lua, (), self._settle_argv(args))))
        return bool(_int(await self._settle(keys=[], args=self._settle_argv(args))))

    async def settle_many(self, batch: list[SettleArgs]) -> None:
        if len(batch) == 1:
            await self.settle(batch[0])
            return
        if self._fast is not None:  # multiplexed: the batch is pipelined on the connection by itself
            fast, script = self._fast, self._settle_lua
            # off the request path: a long batch queues behind itself in Redis, so it gets more time
            # than a request's command (a timed-out settle leaves its reservation to expire: over-count)
            limit = max(fast.timeout_s, SETTLE_BATCH_TIMEOUT_S)
            results = await asyncio.gather(
                *(fast.evalsha(script, (), self._settle_argv(args), timeout_s=limit) for args in batch),
                return_exceptions=True,
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
            return
        for attempt in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for args in batch:
                    pipe.evalsha(self._settle.sha, 0, *self._settle_argv(args))
                results = await pipe.execute(raise_on_error=False)
            missing = [r for r in results if isinstance(r, Exception)]
            if not missing:
                return
            if attempt == 0 and all(isinstance(r, NoScriptError) for r in missing):
                await self._redis.script_load(self._settle.script)  # Redis restarted: scripts gone
                batch = [args for args, r in zip(batch, results, strict=True) if isinstance(r, Exception)]
                continue
            raise missing[0]

    async def usage(self, prefix: str, day_id: str, month_id: str) -> UsageResult:
        raw = list(await self._usage(keys=[], args=[prefix, day_id, month_id]))
        return UsageResult(*(_int(v) for v in raw))


@dataclass(slots=True)
class _Scope:
    rpm: deque[int] = field(default_factory=deque)
    tpm: dict[int, int] = field(default_factory=dict)
    tpd: dict[str, int] = field(default_factory=dict)
    usd: dict[str, int] = field(default_factory=dict)
    pend_tok: int = 0
    pend_usd: int = 0
    resv: OrderedDict[str, tuple[int, int, int]] = field(default_factory=OrderedDict)  # tok, usd, expiry

    def purge(self, now: int) -> None:
        # reservations are appended with a constant TTL, so the oldest expire first
        while self.resv:
            rid, (tok, usd, exp) = next(iter(self.resv.items()))
            if exp > now:
                break
            del self.resv[rid]
            self.pend_tok -= tok
            self.pend_usd -= usd
        while self.rpm and self.rpm[0] <= now - WINDOW_MS:
            self.rpm.popleft()

    def tpm_used(self, minute: int, into: int) -> tuple[int, int, int]:
        cur = self.tpm.get(minute, 0)
        prev = self.tpm.get(minute - 1, 0)
        return (prev * (WINDOW_MS - into)) // WINDOW_MS + cur, cur, prev

    def add_tpm(self, minute: int, delta: int) -> None:
        self.tpm[minute] = self.tpm.get(minute, 0) + delta
        for m in [m for m in self.tpm if m < minute - 1]:
            del self.tpm[m]

    @staticmethod
    def add_period(bucket: dict[str, int], period: str, delta: int) -> None:
        bucket[period] = bucket.get(period, 0) + delta
        for p in [p for p in bucket if p != period]:
            del bucket[p]


class MemoryQuotaBackend:
    """The same algorithm as the Lua scripts, for one process. Every method runs without an
    ``await`` in between, so it is atomic on the event loop. Memory is bounded: at most
    ``max_scopes`` scopes (least recently used evicted) and ``max_settled`` settle markers."""

    def __init__(
        self, *, prefix: str = "prism", max_scopes: int = 100_000, max_settled: int = 200_000
    ) -> None:
        self.base_prefix = prefix
        self.max_scopes = max_scopes
        self.max_settled = max_settled
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()
        self._done: OrderedDict[str, int] = OrderedDict()

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def _scope(self, prefix: str, *, create: bool = True) -> _Scope | None:
        scope = self._scopes.get(prefix)
        if scope is None:
            if not create:
                return None
            scope = self._scopes[prefix] = _Scope()
            while len(self._scopes) > self.max_scopes:
                self._scopes.popitem(last=False)
        else:
            self._scopes.move_to_end(prefix)
        return scope

    async def reserve(self, args: ReserveArgs) -> ReserveResult:
        now = self.now_ms()
        minute, into = divmod(now, WINDOW_MS)
        stats: list[ScopeStats] = []
        refused: tuple[str, int, int] | None = None
        states: list[_Scope] = []
        for i, s in enumerate(args.scopes):
            st = self._scope(s.prefix)
            assert st is not None
            states.append(st)
            st.purge(now)
            if i == 0 and args.request_id in st.resv:
                return ReserveResult(2, "", -1, 0, minute, ())
            rcount = len(st.rpm)
            rreset = st.rpm[-1] + WINDOW_MS - now if st.rpm else 0
            if s.rpm >= 0 and refused is None and rcount >= s.rpm:
                retry = st.rpm[0] + WINDOW_MS - now if st.rpm else WINDOW_MS
                refused = ("requests", i, max(retry, 1))
            tused, cur, prev = st.tpm_used(minute, into)
            if s.tpm >= 0 and refused is None and tused + args.est_tokens > s.tpm:
                if cur + args.est_tokens > s.tpm or prev <= 0:
                    retry = WINDOW_MS - into
                else:
                    retry = -(
                        -((WINDOW_MS - into) * prev - (s.tpm - cur - args.est_tokens) * WINDOW_MS) // prev
                    )
                refused = ("tokens", i, max(retry, 1))
            dused = st.tpd.get(args.day_id, 0) + st.pend_tok
            uused = st.usd.get(args.month_id, 0) + st.pend_usd
            if s.tpd >= 0 and refused is None and dused + args.est_tokens > s.tpd:
                refused = ("tokens_per_day", i, DAY_MS - now % DAY_MS)
            if s.budget_micro >= 0 and refused is None and uused + args.est_micro_usd > s.budget_micro:
                refused = ("monthly_budget", i, max(args.next_month_ms - now, 1000))
            stats.append(ScopeStats(rcount, rreset, tused, WINDOW_MS - into))
        if refused is not None:
            return ReserveResult(0, refused[0], refused[1], refused[2], minute, tuple(stats))
        out: list[ScopeStats] = []
        for st, stat in zip(states, stats, strict=True):
            st.rpm.append(now)
            st.add_tpm(minute, args.est_tokens)
            st.resv[args.request_id] = (args.est_tokens, args.est_micro_usd, now + args.ttl_ms)
            st.pend_tok += args.est_tokens
            st.pend_usd += args.est_micro_usd
            out.append(
                ScopeStats(stat.rpm_used + 1, WINDOW_MS, stat.tpm_used + args.est_tokens, stat.tpm_reset_ms)
            )
        return ReserveResult(1, "", -1, 0, minute, tuple(out))

    async def settle_many(self, batch: list[SettleArgs]) -> None:
        for args in batch:
            await self.settle(args)

    async def settle(self, args: SettleArgs) -> bool:
        now = self.now_ms()
        while self._done and next(iter(self._done.values())) <= now:
            self._done.popitem(last=False)
        if args.request_id in self._done:
            return False
        self._done[args.request_id] = now + args.done_ttl_ms
        while len(self._done) > self.max_settled:
            self._done.popitem(last=False)
        cur_minute = now // WINDOW_MS
        for prefix in args.prefixes:
            st = self._scope(prefix)
            assert st is not None
            held = st.resv.pop(args.request_id, None)
            if held is not None:
                st.pend_tok -= held[0]
                st.pend_usd -= held[1]
            if args.minute < 0:
                st.add_tpm(cur_minute, args.actual_tokens)
            elif args.minute >= cur_minute - 1:
                if args.minute in st.tpm:
                    st.tpm[args.minute] += args.actual_tokens - args.est_tokens
            else:
                st.add_tpm(cur_minute, max(args.actual_tokens - args.est_tokens, 0))
            st.add_period(st.tpd, args.day_id, args.actual_tokens)
            st.add_period(st.usd, args.month_id, args.actual_micro_usd)
        return True

    async def usage(self, prefix: str, day_id: str, month_id: str) -> UsageResult:
        now = self.now_ms()
        minute, into = divmod(now, WINDOW_MS)
        st = self._scope(prefix, create=False)
        if st is None:
            return UsageResult(0, 0, 0, WINDOW_MS - into, 0, 0, 0, 0, 0)
        st.purge(now)
        tused, _, _ = st.tpm_used(minute, into)
        rreset = st.rpm[-1] + WINDOW_MS - now if st.rpm else 0
        return UsageResult(
            len(st.rpm),
            rreset,
            tused,
            WINDOW_MS - into,
            st.tpd.get(day_id, 0),
            st.pend_tok,
            st.usd.get(month_id, 0),
            st.pend_usd,
            len(st.resv),
        )
