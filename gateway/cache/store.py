"""Byte stores behind the response cache: Redis and a bounded in-process LRU with TTLs."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis

from gateway.cache.pipelined import LuaScript, PipelinedRedis

_UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_LOOKUP_OR_LOCK_LUA = """
local value = redis.call('GET', KEYS[1])
if value then
  return {value, 0}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {false, 1}
end
return {false, 0}
"""
"""The entry, or else the single-flight lock: one round trip for a miss's lookup and leadership."""

_SET_AND_UNLOCK_LUA = """
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return 1
"""
"""The leader's answer stored and its lock released (compare-and-delete) in one round trip."""


class ResponseStore(Protocol):
    """Where cache entries (opaque bytes) and single-flight locks live."""

    distributed: bool

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def lookup_or_lock(self, key: str, token: str, ttl_ms: int) -> tuple[bytes | None, bool]:
        """The stored entry if there is one; else whether the single-flight lock was taken."""
        ...

    async def set_and_unlock(self, key: str, value: bytes, ttl_s: float, token: str) -> None: ...

    async def unlock(self, key: str, token: str) -> None: ...

    async def locked(self, key: str) -> bool: ...


class MemoryResponseStore:
    """An LRU bounded by entry count and total bytes; expired entries are dropped on access
    and evicted first when room is needed. Locks are local (the cache's future map is enough)."""

    distributed = False

    def __init__(self, *, max_entries: int = 10_000, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_entries <= 0 or max_bytes <= 0:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _drop(self, key: str) -> None:
        value, _ = self._data.pop(key)
        self._bytes -= len(value)

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires <= time.monotonic():
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0 or len(value) > self.max_bytes:
            return
        if key in self._data:
            self._drop(key)
        now = time.monotonic()
        self._data[key] = (value, now + ttl_s)
        self._bytes += len(value)
        if len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            for stale in [k for k, (_, exp) in self._data.items() if exp <= now]:
                self._drop(stale)
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._data)))

    async def lookup_or_lock(self, key: str, token: str, ttl_ms: int) -> tuple[bytes | None, bool]:
        value = await self.get(key)
        return value, value is None

    async def set_and_unlock(self, key: str, value: bytes, ttl_s: float, token: str) -> None:
        await self.set(key, value, ttl_s)

    async def unlock(self, key: str, token: str) -> None:
        return None

    async def locked(self, key: str) -> bool:
        return False


class RedisResponseStore:
    """Entries as ``{prefix}:rc:{sha}`` strings with ``PX`` expiry; single-flight locks as
    ``{prefix}:rc:lock:{sha}`` set with ``SET NX PX`` and released by compare-and-delete."""

    distributed = True

    def __init__(self, redis: Redis, *, prefix: str = "prism", fast: PipelinedRedis | None = None) -> None:
        """``fast``: a :class:`PipelinedRedis` on the same server for the per-request scripts."""
        self._redis = redis
        self._fast = fast
        self._prefix = prefix
        self._unlock = redis.register_script(_UNLOCK_LUA)
        self._lookup_or_lock = redis.register_script(_LOOKUP_OR_LOCK_LUA)
        self._set_and_unlock = redis.register_script(_SET_AND_UNLOCK_LUA)
        self._unlock_lua = LuaScript(_UNLOCK_LUA)
        self._lookup_or_lock_lua = LuaScript(_LOOKUP_OR_LOCK_LUA)
        self._set_and_unlock_lua = LuaScript(_SET_AND_UNLOCK_LUA)

    def _key(self, key: str) -> str:
        return f"{self._prefix}:rc:{key}"

    def _lock(self, key: str) -> str:
        return f"{self._prefix}:rc:lock:{key}"

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._key(key))
        return value if isinstance(value, bytes) or value is None else str(value).encode()

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        ttl_ms = int(ttl_s * 1000)
        if ttl_ms <= 0:
            return
        if self._fast is not None:
            await self._fast.execute("SET", self._key(key), value, "PX", ttl_ms)
        else:
            await self._redis.set(self._key(key), value, px=ttl_ms)

    async def lookup_or_lock(self, key: str, token: str, ttl_ms: int) -> tuple[bytes | None, bool]:
        keys, args = (self._key(key), self._lock(key)), (token, max(ttl_ms, 1))
        if self._fast is not None:
            value, locked = await self._fast.evalsha(self._lookup_or_lock_lua, keys, args)
        else:
            value, locked = await self._lookup_or_lock(keys=keys, args=args)
        if not value:  # Lua false arrives as nil (RESP2) or False (RESP3)
            return None, bool(locked)
        return value if isinstance(value, bytes) else str(value).encode(), bool(locked)

    async def set_and_unlock(self, key: str, value: bytes, ttl_s: float, token: str) -> None:
        keys, args = (self._key(key), self._lock(key)), (value, max(int(ttl_s * 1000), 0), token)
        if self._fast is not None:
            await self._fast.evalsha(self._set_and_unlock_lua, keys, args)
        else:
            await self._set_and_unlock(keys=keys, args=args)

    async def unlock(self, key: str, token: str) -> None:
        if self._fast is not None:
            await self._fast.evalsha(self._unlock_lua, (self._lock(key),), (token,))
        else:
            await self._unlock(keys=[self._lock(key)], args=[token])

    async def locked(self, key: str) -> bool:
        return bool(await self._redis.exists(self._lock(key)))
