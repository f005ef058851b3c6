"""Circuit breakers shared between replicas through Redis (when ``GATEWAY_REDIS_URL`` is set).

The graph's calls (``allow``, ``record_success``, ``record_failure``, ``release_probe``,
``state``) stay synchronous and never wait for Redis: each replica decides on its local
copy, and one background task per replica, every ``circuit_breaker.sync_interval_s``
(200 ms by default) and at once after a local transition, runs one pipeline that

* publishes local transitions (``{prefix}:cb:{target}`` hash: state, opened_at, cooldown_s,
  last_failure_at, changed_at — wall-clock seconds);
* adds the outcomes counted since the last sync to shared 5-second buckets
  (``HINCRBY`` + ``EXPIRE``) and to the shared consecutive-failure counter
  (reset on a success, ``INCRBY`` on failures);
* reads every target's shared state, consecutive failures and window back, opens a
  closed circuit whose shared figures cross a threshold, and adopts any state newer
  than the local one.

Half-open probes are claimed with ``SET {prefix}:cb:{target}:probe NX PX``: only the
replica holding the claim lets one request through; the others keep the target open.
Redis unreachable → each replica carries on with its local breakers (the in-process
behaviour, including local probes) until Redis answers again.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from typing import Any

import structlog
from redis.asyncio import Redis

from gateway.background import BackgroundWorker
from gateway.config.routing import CircuitBreakerConfig
from gateway.routing.circuit import CircuitBreakers, CircuitState, _Circuit

log = structlog.get_logger("prism.circuit")

_BUCKET_S = 5
_STATES = {"closed": CircuitState.CLOSED, "open": CircuitState.OPEN, "half_open": CircuitState.HALF_OPEN}


class SharedCircuitBreakers(CircuitBreakers):
    def __init__(self, config: CircuitBreakerConfig, redis: Redis, *, prefix: str = "prism") -> None:
        super().__init__(config, clock=time.time)
        self.redis = redis
        self.prefix = prefix
        self.targets: set[str] = set()
        self.healthy = True
        """Did the last sync reach Redis? When not, probes are decided locally."""
        self._pending: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        """Per target since the last sync: [successes, failures, failures after the last success]."""
        self._changed: dict[str, float] = {}
        self._publish: set[str] = set()
        self._probe_claims: set[str] = set()
        self._worker = BackgroundWorker(
            "circuit_sync",
            self._sync_round,
            interval_s=lambda: self.config.sync_interval_s,
            backoff=None,  # a replica that lost Redis decides locally and retries every interval
            drain=self.sync,  # last outcomes and transitions
        )

    def _key(self, target: str, suffix: str = "") -> str:
        return f"{self.prefix}:cb:{target}{suffix}"

    def reconfigure(self, config: CircuitBreakerConfig, *, targets: set[str]) -> None:
        super().reconfigure(config, targets=targets)
        self.targets = set(targets)

    def start(self) -> None:
        self._worker.start()

    async def aclose(self) -> None:
        await self._worker.aclose()
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    # -- the graph's side (synchronous, local) -----------------------------------------------

    def allow(self, target: str) -> bool:
        circuit = self._circuits.get(target)
        if circuit is None or circuit.state is CircuitState.CLOSED:
            return True
        if not self.healthy:
            return super().allow(target)
        if self.state(target) is CircuitState.OPEN or circuit.probe_in_flight:
            return False
        if target not in self._probe_claims:
            self._worker.wake()  # claim the probe slot on the next sync
            return False
        self._probe_claims.discard(target)
        circuit.probe_in_flight = True
        self._transition(target, circuit, CircuitState.HALF_OPEN)
        return True

    def record_success(self, target: str) -> None:
        pending = self._pending[target]
        pending[0] += 1
        pending[2] = 0
        super().record_success(target)

    def record_failure(self, target: str) -> None:
        pending = self._pending[target]
        pending[1] += 1
        pending[2] += 1
        super().record_failure(target)

    def _transition(
        self, target: str, circuit: _Circuit, state: CircuitState, *, adopted: bool = False
    ) -> None:
        if circuit.state is state:
            return
        super()._transition(target, circuit, state, adopted=adopted)
        if state is not CircuitState.HALF_OPEN:
            self._changed[target] = self._clock()
            self._publish.add(target)
            self._worker.wake()

    # -- the shared side ---------------------------------------------------------------------

    async def _sync_round(self) -> bool:
        try:
            await self.sync()
        except Exception as exc:
            if self.healthy:
                log.warning("circuit_sync_failed", error=type(exc).__name__)
            self.healthy = False
            return False
        if not self.healthy:
            log.info("circuit_sync_recovered")
        self.healthy = True
        return True

    async def sync(self) -> None:
        """One round trip: publish, count, read back (then maybe a second to open or claim a probe)."""
        now = self._clock()
        bucket = int(now) // _BUCKET_S
        buckets = [bucket - i for i in range(math.ceil(self.config.window_s / _BUCKET_S) + 1)]
        pending, self._pending = self._pending, defaultdict(lambda: [0, 0, 0])
        publish, self._publish = self._publish, set()
        names = sorted(self.targets | set(self._circuits) | set(pending))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for target in publish:
                    circuit = self._circuits.get(target)
                    if circuit is not None:
                        pipe.hset(self._key(target), mapping=self._fields(target, circuit))
                        if circuit.state is CircuitState.CLOSED:
                            pipe.delete(self._key(target, ":probe"), self._key(target, ":consec"))
                        else:
                            pipe.expire(self._key(target), int(self.config.max_cooldown_s * 4) + 60)
                for target, (ok, bad, tail) in pending.items():
                    window = self._key(target, f":w:{bucket}")
                    if ok:
                        pipe.hincrby(window, "ok", ok)
                    if bad:
                        pipe.hincrby(window, "fail", bad)
                    pipe.expire(window, int(self.config.window_s) + 2 * _BUCKET_S)
                    if ok:
                        pipe.set(self._key(target, ":consec"), tail, ex=3600)
                    elif bad:
                        pipe.incrby(self._key(target, ":consec"), bad)
                        pipe.expire(self._key(target, ":consec"), 3600)
                for target in names:
                    pipe.hgetall(self._key(target))
                    pipe.get(self._key(target, ":consec"))
                    for b in buckets:
                        pipe.hmget(self._key(target, f":w:{b}"), "ok", "fail")
                replies: list[Any] = await pipe.execute()
        except Exception:
            self._restore(pending, publish)
            raise
        per_target = 2 + len(buckets)
        rows = replies[len(replies) - per_target * len(names) :]
        to_open: list[str] = []
        to_probe: list[str] = []
        for i, target in enumerate(names):
            row = rows[i * per_target : (i + 1) * per_target]
            shared, consec, windows = row[0], row[1], row[2:]
            if self._adopt(target, shared, now):
                to_probe.append(target)
            requests = failures = 0
            for ok, bad in windows:
                requests += int(ok or 0) + int(bad or 0)
                failures += int(bad or 0)
            circuit = self._circuits.get(target)
            if circuit is not None and circuit.state is CircuitState.CLOSED and (
                int(consec or 0) >= self.config.failure_threshold
                or (requests >= self.config.min_requests and failures >= self.config.failure_rate * requests)
            ):
                to_open.append(target)
        for target in to_open:
            circuit = self._get(target)
            circuit.cooldown_s = max(circuit.cooldown_s, self.config.cooldown_s)
            circuit.opened_at = now
            circuit.last_failure_at = now
            circuit.window.clear()
            self._transition(target, circuit, CircuitState.OPEN)
        if to_open:
            await self._push(to_open)
        if to_probe:
            await self._claim(to_probe)

    def _restore(self, pending: dict[str, list[int]], publish: set[str]) -> None:
        for target, (ok, bad, tail) in pending.items():
            mine = self._pending[target]
            mine[0] += ok
            mine[1] += bad
            mine[2] = mine[2] if ok == 0 and mine[0] else tail + mine[2]
        self._publish |= publish

    def _fields(self, target: str, circuit: _Circuit) -> dict[Any, Any]:
        return {
            "state": circuit.state.name.lower(),
            "opened_at": repr(circuit.opened_at),
            "cooldown_s": repr(circuit.cooldown_s),
            "last_failure_at": repr(circuit.last_failure_at),
            "changed_at": repr(self._changed.get(target, self._clock())),
        }

    def _adopt(self, target: str, shared: dict[bytes, bytes] | None, now: float) -> bool:
        """Take the shared state when it is newer than ours; ``True`` when a probe may be claimed."""
        if not shared:
            circuit = self._circuits.get(target)
            # Reset by an operator (keys deleted) or expired: close here too.
            if (
                circuit is not None
                and circuit.state is not CircuitState.CLOSED
                and target in self._changed
                and now - self._changed[target] > self.config.sync_interval_s * 2
            ):
                self._close_from_shared(target, circuit, now)
            return False
        fields = {key.decode(): value.decode() for key, value in shared.items()}
        changed = float(fields.get("changed_at", 0))
        circuit = self._get(target)
        if changed > self._changed.get(target, 0.0):
            self._changed[target] = changed
            circuit.opened_at = float(fields.get("opened_at", 0))
            circuit.cooldown_s = float(fields.get("cooldown_s", 0))
            circuit.last_failure_at = max(circuit.last_failure_at, float(fields.get("last_failure_at", 0)))
            state = _STATES.get(fields.get("state", "closed"), CircuitState.CLOSED)
            if state is CircuitState.CLOSED:
                self._close_from_shared(target, circuit, changed)
            elif circuit.state is not CircuitState.OPEN:
                circuit.probe_in_flight = False
                self._probe_claims.discard(target)
                CircuitBreakers._transition(self, target, circuit, CircuitState.OPEN, adopted=True)
        return (
            circuit.state is not CircuitState.CLOSED
            and not circuit.probe_in_flight
            and target not in self._probe_claims
            and now - circuit.opened_at >= circuit.cooldown_s
        )

    def _close_from_shared(self, target: str, circuit: _Circuit, changed: float) -> None:
        circuit.failures = 0
        circuit.probe_in_flight = False
        circuit.cooldown_s = 0.0
        circuit.window.clear()
        self._probe_claims.discard(target)
        self._changed[target] = changed
        CircuitBreakers._transition(self, target, circuit, CircuitState.CLOSED, adopted=True)

    async def _push(self, targets: list[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for target in targets:
                pipe.hset(self._key(target), mapping=self._fields(target, self._circuits[target]))
                self._publish.discard(target)
            await pipe.execute()

    async def _claim(self, targets: list[str]) -> None:
        ttl_ms = max(int(self.config.cooldown_s * 1000), 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            for target in targets:
                pipe.set(self._key(target, ":probe"), "1", nx=True, px=ttl_ms)
            won = await pipe.execute()
        self._probe_claims.update(target for target, ok in zip(targets, won, strict=True) if ok)

    # -- admin ---------------------------------------------------------------------------------

    async def shared_snapshot(self) -> dict[str, dict[str, float | int | str]]:
        with contextlib.suppress(Exception):
            await self.sync()
        return self.snapshot()

    async def shared_reset(self, target: str) -> bool:
        bucket = int(self._clock()) // _BUCKET_S
        count = int(self.config.window_s) // _BUCKET_S + 3
        windows = [self._key(target, f":w:{bucket - i}") for i in range(count)]
        keys = (self._key(target), self._key(target, ":probe"), self._key(target, ":consec"))
        existed = bool(await self.redis.delete(*keys))
        await self.redis.delete(*windows)
        self._probe_claims.discard(target)
        self._changed.pop(target, None)
        self._pending.pop(target, None)
        return self.reset(target) or existed


def open_circuits(redis_url: str | None, *, timeout_ms: int, prefix: str) -> CircuitBreakers:
    """Shared breakers when Redis is configured (the sync task starts here), in-process otherwise."""
    if not redis_url:
        return CircuitBreakers(CircuitBreakerConfig())
    from gateway.cache.backends import make_redis

    breakers = SharedCircuitBreakers(
        CircuitBreakerConfig(), make_redis(redis_url, timeout_ms=max(timeout_ms, 200), max_connections=4),
        prefix=prefix,
    )
    breakers.start()
    return breakers
