"""Open the cache and quota backends: Redis when ``settings.redis_url`` is set, else in-process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.cache import redis_url
from gateway.cache.pipelined import PipelinedRedis
from gateway.cache.quota import QuotaLimiter
from gateway.cache.quota_backends import MemoryQuotaBackend, RedisQuotaBackend
from gateway.cache.response import ResponseCache
from gateway.cache.store import MemoryResponseStore, RedisResponseStore
from gateway.config.quotas import QuotaConfig
from gateway.config.settings import Settings

log = structlog.get_logger(__name__)
_DRIVER_INFO = DriverInfo()
"""Built once: redis-py otherwise reads its package metadata (``importlib.metadata``) for every new
connection, which made each reconnect after a timeout cost about a millisecond of CPU."""


def make_redis(url: str, *, timeout_ms: int, max_connections: int = 256) -> Redis:
    """A pooled asyncio client whose every command is bounded by ``timeout_ms``.

    The pool blocks (for at most ``timeout_ms``) when all its connections are busy instead of
    failing at once: a burst of concurrent requests queues for a connection rather than
    degrading to fail-open. One immediate retry on connection errors only (a pooled connection
    that died with a Redis restart is replaced transparently); timeouts are not retried — a
    retried reserve could count twice, and a slow Redis must cost at most one timeout.

    ``url``: any of ``gateway/cache/redis_url.py``'s; a Sentinel URL gets redis-py's Sentinel pool
    (which fails at once, rather than waiting, when all ``max_connections`` are busy).
    """
    timeout = timeout_ms / 1000
    if redis_url.check(url) == redis_url.SENTINEL_SCHEME:
        return redis_url.sentinel_client(
            url,
            max_connections=max_connections,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            health_check_interval=0,
            driver_info=_DRIVER_INFO,
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=0,
        driver_info=_DRIVER_INFO,
    )
    return Redis.from_pool(pool)  # the client owns (and closes) its pool


@dataclass(slots=True)
class CacheBackends:
    kind: Literal["redis", "memory"]
    cache: ResponseCache
    quotas: QuotaLimiter
    redis: Redis | None = None
    fast: PipelinedRedis | None = None
    """The multiplexed client of the per-request scripts (``gateway/cache/pipelined.py``)."""

    async def ping(self) -> bool:
        """For ``/readyz``: the in-process backend is always ready; Redis must answer PING."""
        if self.redis is None:
            return True
        try:
            return bool(await self.redis.ping())
        except Exception as exc:
            log.warning("redis_ping_failed", error=type(exc).__name__)
            return False

    async def aclose(self) -> None:
        await self.cache.aclose()  # answers still on their way to the store go out first
        await self.quotas.aclose()  # queued settlements go out before the connection closes
        if self.fast is not None:
            await self.fast.aclose()
        if self.redis is not None:
            await self.redis.aclose()


async def open_backends(
    settings: Settings,
    *,
    quota_config: QuotaConfig | None = None,
    prefix: str = "prism",
    cache_max_entries: int = 10_000,
    cache_max_bytes: int = 256 * 1024 * 1024,
) -> CacheBackends:
    """Build the backends. Redis being down at start-up is not fatal: requests degrade
    (cache misses; quotas per ``fail_mode``) and the pool reconnects when Redis returns. An
    unsupported URL or a Redis Cluster node raises :class:`~gateway.cache.redis_url.UnsupportedRedisURL`."""
    if settings.redis_url:
        redis_url.check(settings.redis_url)
        redis = make_redis(settings.redis_url, timeout_ms=settings.redis_timeout_ms)
        fast = (
            PipelinedRedis(settings.redis_url, timeout_s=settings.redis_timeout_ms / 1000)
            if PipelinedRedis.supports(settings.redis_url)
            else None
        )
        backends = CacheBackends(
            kind="redis",
            cache=ResponseCache(RedisResponseStore(redis, prefix=prefix, fast=fast)),
            quotas=QuotaLimiter(RedisQuotaBackend(redis, prefix=prefix, fast=fast), quota_config),
            redis=redis,
            fast=fast,
        )
        if not await backends.ping():
            log.warning("redis_unavailable_at_startup", fail_mode=backends.quotas.config.fail_mode)
        elif await _is_cluster_node(redis):
            await backends.aclose()
            raise redis_url.UnsupportedRedisURL(
                "GATEWAY_REDIS_URL points at a Redis Cluster node; Redis Cluster is not supported "
                "(see docs/cache-and-quotas.md): use one primary, with Sentinel for failover"
            )
        return backends
    return CacheBackends(
        kind="memory",
        cache=ResponseCache(MemoryResponseStore(max_entries=cache_max_entries, max_bytes=cache_max_bytes)),
        quotas=QuotaLimiter(MemoryQuotaBackend(prefix=prefix), quota_config),
    )


async def _is_cluster_node(redis: Redis) -> bool:
    try:
        info = await redis.info("cluster")
    except Exception as exc:  # a proxy or managed Redis may refuse INFO: assume not a cluster
        log.warning("redis_info_failed", error=type(exc).__name__)
        return False
    return bool(info.get("cluster_enabled"))
