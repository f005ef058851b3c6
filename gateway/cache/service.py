"""The completion service's view of :class:`ResponseCache`: ``key_for`` decides cacheability and
tenancy from the live routing config, ``lookup`` returns the stored response dict, ``store`` saves
an answer (behind the response)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.cache.entry import CachedEntry
from gateway.cache.keys import cache_key, cacheable
from gateway.cache.response import ResponseCache
from gateway.config.routing import RoutingConfig


class PipelineCache:
    def __init__(
        self, cache: ResponseCache, config: Callable[[], RoutingConfig], *, ttl_s: float = 3600.0
    ) -> None:
        self.cache = cache
        self._config = config
        self.ttl_s = ttl_s

    def key_for(
        self,
        *,
        tenant: str,
        model: str,
        request: Mapping[str, Any],
        opt_in: bool = False,
        config: RoutingConfig | None = None,
    ) -> str | None:
        """``config``: the request's config snapshot (the live one when omitted)."""
        config = config or self._config()
        if not config.cache.enabled:
            return None
        if not cacheable(
            request, cache_non_deterministic=config.cache.cache_non_deterministic, opt_in=opt_in
        ):
            ResponseCache.note_bypass()
            return None
        model_config = config.models.get(model)
        shared = bool(model_config is not None and model_config.shared_cache)
        return cache_key(request, route=model, tenant=tenant, shared=shared)

    async def lookup(self, *, key: str) -> dict[str, Any] | None:
        entry = await self.cache.get(key)
        return None if entry is None else entry.response

    async def lookup_entry(self, *, key: str) -> CachedEntry | None:
        """The stored entry: the answer and the configured model that gave it."""
        return await self.cache.get(key)

    async def store(
        self,
        *,
        key: str,
        response: dict[str, Any],
        model_served: str,
        provider: str | None = None,
        ttl_s: float | None = None,
    ) -> None:
        entry = CachedEntry(
            response=response, model_served=model_served, usage=response.get("usage"), provider=provider
        )
        await self.cache.set_behind(key, entry, self.ttl_s if ttl_s is None else ttl_s)
