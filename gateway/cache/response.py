"""The exact-match response cache with single flight.

Cache failures never fail a request: a backend error makes ``get`` a miss and ``set`` a
no-op, counted in ``prism_backend_errors{operation}`` and logged as a warning.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import structlog

from gateway.cache.entry import CachedEntry
from gateway.cache.store import ResponseStore
from gateway.observability.metrics import BACKEND_ERRORS, CACHE_REQUESTS, CACHE_WRITES_BEHIND

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Flight:
    """The outcome of entering ``single_flight`` (or ``enter_flight``). Truthy for the leader.

    A waiter (``leader`` False) has already waited: ``entry`` is the leader's answer, or
    ``None`` when the leader failed or the wait ran out, and the waiter proceeds on its own.
    """

    leader: bool
    entry: CachedEntry | None = None
    checked: bool = False
    """The store was already consulted for this key (a miss, for a leader): no second lookup needed."""
    owned: asyncio.Future[CachedEntry | None] | None = field(default=None, repr=False, compare=False)
    """The in-process future this flight created (its local waiters wait on it): ``leave_flight``
    settles it."""

    def __bool__(self) -> bool:
        return self.leader


class ResponseCache:
    def __init__(self, store: ResponseStore, *, poll_max_s: float = 0.05, max_behind: int = 1024) -> None:
        self._store = store
        self._poll_max_s = poll_max_s
        self._inflight: dict[str, asyncio.Future[CachedEntry | None]] = {}
        self._locks: dict[str, str] = {}
        """Keys whose distributed single-flight lock this process holds → the lock's token."""
        self.max_behind = max_behind
        self._behind: dict[str, CachedEntry] = {}
        """Entries on their way to a distributed store (``set_behind``): this process answers from here."""
        self._writes: set[asyncio.Task[None]] = set()

    @property
    def store(self) -> ResponseStore:
        return self._store

    @staticmethod
    def _backend_error(operation: str, exc: BaseException) -> None:
        BACKEND_ERRORS.labels(operation=operation).inc()
        log.warning("cache_backend_error", operation=operation, error=type(exc).__name__, detail=str(exc))

    async def _fetch(self, key: str) -> CachedEntry | None:
        behind = self._behind.get(key)
        if behind is not None:
            return behind
        raw = await self._store.get(key)
        return None if raw is None else CachedEntry.from_bytes(raw)

    async def get(self, key: str) -> CachedEntry | None:
        """The entry for ``key``, or ``None`` on a miss or any backend failure."""
        try:
            entry = await self._fetch(key)
        except Exception as exc:
            self._backend_error("cache_get", exc)
            CACHE_REQUESTS.labels(result="error").inc()
            return None
        CACHE_REQUESTS.labels(result="hit" if entry is not None else "miss").inc()
        return entry

    async def set(self, key: str, entry: CachedEntry, ttl_s: float) -> None:
        """Store ``entry`` (skipped on backend failure) and hand it to any local waiters; a leader's
        lock is released in the same round trip."""
        await self._write(key, entry, ttl_s, self._hand_over(key, entry))

    def _hand_over(self, key: str, entry: CachedEntry) -> str | None:
        """Local waiters get ``entry``; the leader's lock token (if this process holds it) is taken."""
        fut = self._inflight.get(key)
        if fut is not None and not fut.done():
            fut.set_result(entry)
        return self._locks.pop(key, None)

    async def _write(self, key: str, entry: CachedEntry, ttl_s: float, token: str | None) -> None:
        try:
            if token is None:
                await self._store.set(key, entry.to_bytes(), ttl_s)
            else:
                await self._store.set_and_unlock(key, entry.to_bytes(), ttl_s, token)
        except Exception as exc:
            self._backend_error("cache_set", exc)
            if token is not None:
                await self._release(key, token)

    async def set_behind(self, key: str, entry: CachedEntry, ttl_s: float) -> None:
        """``set`` off the request path: local waiters get ``entry`` and this process answers the key
        from memory at once; the store write (and the leader's unlock) goes out in a background task,
        awaited by :meth:`aclose`. An in-process store, or more than ``max_behind`` writes in
        flight, is written inline instead (back-pressure, never a drop)."""
        if not self._store.distributed or len(self._writes) >= self.max_behind:
            await self.set(key, entry, ttl_s)
            return
        # The token is taken now, before the caller leaves its flight (whose exit would unlock separately).
        token = self._hand_over(key, entry)
        self._behind[key] = entry
        task = asyncio.create_task(self._write_behind(key, entry, ttl_s, token), name="cache-write-behind")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        CACHE_WRITES_BEHIND.inc()

    async def _write_behind(self, key: str, entry: CachedEntry, ttl_s: float, token: str | None) -> None:
        try:
            await self._write(key, entry, ttl_s, token)
        finally:
            CACHE_WRITES_BEHIND.dec()
            if self._behind.get(key) is entry:
                del self._behind[key]

    async def aclose(self, *, timeout_s: float = 5.0) -> None:
        """Wait (at most ``timeout_s``) for the writes still behind (graceful shutdown, before the
        store's connections close). One that overruns is cancelled: its entry is a cache miss later."""
        if not self._writes:
            return
        pending = set(self._writes)
        _, late = await asyncio.wait(pending, timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            log.warning("cache_writes_behind_abandoned", writes=len(late))
            await asyncio.wait(late)

    async def _release(self, key: str, token: str) -> None:
        try:
            await self._store.unlock(key, token)
        except Exception as exc:
            self._backend_error("cache_unlock", exc)

    @staticmethod
    def note_bypass() -> None:
        """Count a request that skipped the cache (not cacheable, or the client opted out)."""
        CACHE_REQUESTS.labels(result="bypass").inc()

    async def _wait_remote(self, key: str, wait_s: float) -> CachedEntry | None:
        """Poll for another process's leader: until the entry appears, the lock goes away, or time is up."""
        deadline = time.monotonic() + wait_s
        delay = 0.002
        while True:
            try:
                entry = await self._fetch(key)
                if entry is not None:
                    return entry
                if not await self._store.locked(key):
                    return await self._fetch(key)
            except Exception as exc:
                self._backend_error("cache_wait", exc)
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, self._poll_max_s)

    @asynccontextmanager
    async def single_flight(self, key: str, *, wait_s: float = 30.0) -> AsyncIterator[Flight]:
        """Collapse concurrent identical misses into one upstream call.

        The first caller becomes the leader (``Flight`` is truthy) and should call the
        provider and ``set`` the entry. Others wait up to ``wait_s`` (pass the request's
        remaining deadline) for the leader and get its entry; if the leader fails or the
        wait runs out they get ``entry=None`` and proceed on their own. Within one process
        waiters share an ``asyncio.Future``; across processes (Redis) one script looks the key
        up and, on a miss, takes a ``SET NX PX`` lock for at most ``wait_s`` (an entry found
        there comes back as a non-leader ``Flight`` with ``entry`` set and ``checked``); the
        leader's ``set`` stores and unlocks in one round trip, and waiters poll with backoff.
        The same as :meth:`enter_flight` then :meth:`leave_flight`.
        """
        flight = await self.enter_flight(key, wait_s=wait_s)
        try:
            yield flight
        finally:
            await self.leave_flight(key, flight)

    async def enter_flight(self, key: str, *, wait_s: float = 30.0, count_miss: bool = True) -> Flight:
        """``single_flight``'s entry, for a caller that leaves it from elsewhere (the completion
        service enters it in the background while the graph routes and guards the prompt). Every
        flight entered must be passed to :meth:`leave_flight`; one whose entry fails or is
        cancelled has already left. ``count_miss=False``: the caller counts the miss itself (the
        completion service, only once the request's quota reservation has passed)."""
        existing = self._inflight.get(key)
        if existing is not None:
            try:
                entry = await asyncio.wait_for(asyncio.shield(existing), timeout=max(wait_s, 0.0))
            except TimeoutError:
                entry = None
            return Flight(leader=False, entry=entry)
        behind = self._behind.get(key)
        if behind is not None:  # answered a moment ago here, still on its way to the store
            return Flight(leader=False, entry=behind, checked=True)

        fut: asyncio.Future[CachedEntry | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        token = uuid.uuid4().hex
        try:
            leader, found, checked, failed = True, None, False, False
            if self._store.distributed:
                try:
                    ttl_ms = int(max(wait_s, 1.0) * 1000)
                    raw, locked = await self._store.lookup_or_lock(key, token, ttl_ms)
                    checked = True
                    if locked:
                        self._locks[key] = token
                    found = None if raw is None else CachedEntry.from_bytes(raw)
                    leader = locked and found is None
                except Exception as exc:
                    # fail open as a leader, and do not look again: a slow Redis costs one timeout
                    # per request, not one per lookup (the pipeline's cache node skips checked keys)
                    self._backend_error("cache_lock", exc)
                    failed = True
            if found is not None:  # counted as a hit by the caller, like a waiter's entry
                if not fut.done():
                    fut.set_result(found)
                return Flight(leader=False, entry=found, checked=True, owned=fut)
            if leader:
                if checked and count_miss:
                    CACHE_REQUESTS.labels(result="miss").inc()
                return Flight(leader=True, checked=checked or failed, owned=fut)
            entry = await self._wait_remote(key, wait_s)
            if not fut.done():
                fut.set_result(entry)
            return Flight(leader=False, entry=entry, owned=fut)
        except BaseException:
            await self.leave_flight(key, Flight(leader=False, owned=fut))
            raise

    async def leave_flight(self, key: str, flight: Flight) -> None:
        """Hand local waiters what the leader stored (or nothing) and release the lock it still holds."""
        fut = flight.owned
        if fut is None:
            return
        if not fut.done():
            fut.set_result(None)
        if self._inflight.get(key) is fut:
            del self._inflight[key]
        held = self._locks.pop(key, None)
        if held is not None:
            await self._release(key, held)
