"""Response cache and quotas (issue #4): Redis-backed or in-process, same behaviour."""

from gateway.cache.backends import CacheBackends, make_redis, open_backends
from gateway.cache.entry import CachedEntry, replay_chunks
from gateway.cache.keys import cache_key, cacheable, canonical_json, is_deterministic, normalise_request
from gateway.cache.quota import (
    EffectiveLimits,
    QuotaLimiter,
    QuotaTicket,
    ScopeLimits,
    format_duration,
    key_scope,
    user_scope,
)
from gateway.cache.quota_backends import MemoryQuotaBackend, RedisQuotaBackend
from gateway.cache.response import Flight, ResponseCache
from gateway.cache.store import MemoryResponseStore, RedisResponseStore

__all__ = [
    "CacheBackends",
    "CachedEntry",
    "EffectiveLimits",
    "Flight",
    "MemoryQuotaBackend",
    "MemoryResponseStore",
    "QuotaLimiter",
    "QuotaTicket",
    "RedisQuotaBackend",
    "RedisResponseStore",
    "ResponseCache",
    "ScopeLimits",
    "cache_key",
    "cacheable",
    "canonical_json",
    "format_duration",
    "is_deterministic",
    "key_scope",
    "make_redis",
    "normalise_request",
    "open_backends",
    "replay_chunks",
    "user_scope",
]
