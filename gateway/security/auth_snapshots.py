"""The last known state of API keys, users and login sessions, shared by every worker through Redis,
for the one moment it is read: the database cannot be reached and this worker has no entry of its own.

Each worker's authenticator keeps what it verified in process (fresh for ``api_key_cache_ttl_s``,
kept ``auth_cache_stale_s`` longer for outages). A worker that never saw a key before Postgres went
down — a new connection from a load balancer that moved clients after a replica died, a worker that
just started — had nothing to fall back on and answered 503. Here every database read of a key, user
or session is also written (in the background, never on the request's path) to Redis for
``auth_cache_stale_s``; during an outage a worker without a stale entry of its own reads it from there.

What is stored is what the in-process cache holds: ids, the key's prefix, flags, limits and allowed
models, keyed by the key's SHA-256 hash — never a secret. Revocations made through the API delete the
shared entry at once (a key by its id through a small id → hash index; a user's entry, without which
none of that user's keys is accepted from here); revocations made while the database is down cannot
happen. The bound is therefore the same as for a worker's own stale entries: ``auth_cache_stale_s``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import structlog
from redis.asyncio import Redis

from gateway.observability import metrics

log = structlog.get_logger(__name__)

_WRITES = metrics.AUTH_SNAPSHOT.labels(op="write")
_READS = metrics.AUTH_SNAPSHOT.labels(op="read")
_FAILED = metrics.AUTH_SNAPSHOT.labels(op="failed")


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


class AuthSnapshots:
    """``kind`` is ``key`` (by key hash), ``user`` (by user id) or ``session`` (by family id)."""

    def __init__(self, redis: Redis, *, prefix: str, ttl_s: float) -> None:
        self._redis = redis
        self._prefix = f"{prefix}auth:"
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._tasks: set[asyncio.Task[None]] = set()

    def _name(self, kind: str, ident: str) -> str:
        return f"{self._prefix}{kind}:{ident}"

    # -- writes: background, best effort (the database stays the source of truth)
    def put(self, kind: str, ident: str, value: Any, *, index: tuple[str, str] | None = None) -> None:
        """Store ``value`` (a dataclass or JSON-able value); ``index`` = (kind, id) → ``ident``."""
        data = asdict(value) if hasattr(value, "__dataclass_fields__") else value
        payload = json.dumps(data, default=_plain)
        self._spawn(self._put(self._name(kind, ident), payload, index, ident))

    def forget(self, kind: str, ident: str, *, indexed: bool = False) -> None:
        """Delete an entry; with ``indexed``, ``ident`` is an index id and its target goes too."""
        self._spawn(self._forget(kind, ident, indexed))

    async def _put(self, name: str, payload: str, index: tuple[str, str] | None, ident: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(name, payload, px=self._ttl_ms)
        if index is not None:
            pipe.set(self._name(*index), ident, px=self._ttl_ms)
        await pipe.execute()
        _WRITES.inc()

    async def _forget(self, kind: str, ident: str, indexed: bool) -> None:
        if indexed:
            target = await self._redis.get(self._name(kind, ident))
            await self._redis.delete(self._name(kind, ident))
            if target is not None:
                key_hash = target.decode() if isinstance(target, bytes) else str(target)
                await self._redis.delete(self._name("key", key_hash))
        else:
            await self._redis.delete(self._name(kind, ident))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, work: Any) -> None:
        try:
            await work
        except Exception as exc:  # Redis down: the in-process cache still holds this worker's entries
            _FAILED.inc()
            log.debug("auth_snapshot_failed", error=type(exc).__name__)

    # -- reads: only during a database outage
    async def get(self, kind: str, ident: str) -> Any | None:
        try:
            raw = await self._redis.get(self._name(kind, ident))
        except Exception as exc:
            _FAILED.inc()
            log.warning("auth_snapshot_unavailable", error=type(exc).__name__)
            return None
        if raw is None:
            return None
        _READS.inc()
        return json.loads(raw)

    async def drain(self) -> None:
        """Wait for the writes in flight (shutdown, tests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
