"""A request's admission: the quota reservation and the response cache's lookup-or-lock.

``Admission`` is the flow's ``AdmissionPort``. The ``admit`` node calls :meth:`Admission.begin`,
which plans the cache key and sends both round trips at once; ``gate`` awaits
:meth:`Admission.outcome`. The completion service calls :meth:`Admission.close` when the request
returns, whatever happened: it leaves the cache's single flight, cancels what is still in flight
and settles a reservation the request never took up.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

from gateway.cache import QuotaLimiter, QuotaTicket
from gateway.cache.response import Flight
from gateway.cache.service import PipelineCache
from gateway.observability import metrics
from gateway.security.principal import Principal
from gateway.services.accounting import RequestBooks


@dataclass(slots=True)
class CachePolicy:
    """What the client asked of the cache: ``Cache-Control: no-cache`` (read), ``no-store`` (write),
    or an explicit opt-in for non-deterministic requests."""

    read: bool = True
    write: bool = True
    opt_in: bool = False


class Admission:
    def __init__(
        self,
        books: RequestBooks,
        *,
        quotas: QuotaLimiter | None,
        cache: PipelineCache | None,
        policy: CachePolicy,
    ) -> None:
        self.books = books
        self.quotas = quotas
        self.cache = cache
        self.policy = policy
        self.cache_key: str | None = None
        """The key to look up (``None``: no lookup, e.g. ``no-cache``)."""
        self.flight: Flight | None = None
        self._reserving: asyncio.Future[QuotaTicket | None] | None = None
        self._admitting: asyncio.Future[dict[str, Any] | None] | None = None

    def begin(self) -> None:
        self._plan_cache()
        self._reserving = asyncio.ensure_future(self._reserve())
        self._admitting = asyncio.ensure_future(self._admit(self._reserving))

    async def outcome(self) -> dict[str, Any] | None:
        assert self._admitting is not None, "begin() first"
        return await self._admitting

    async def close(self) -> None:
        admitting, reserving, books = self._admitting, self._reserving, self.books
        if admitting is not None:
            if not admitting.done():  # the request ended before it was admitted (cancelled)
                admitting.cancel()
                await asyncio.wait([admitting])
            elif not admitting.cancelled():
                admitting.exception()  # a refusal the request did not wait for is not "never retrieved"
        if self.flight is not None and self.cache is not None and self.cache_key is not None:
            await self.cache.cache.leave_flight(self.cache_key, self.flight)
        if reserving is None:
            return
        if not reserving.done():
            reserving.cancel()
        elif books.ticket is None and not reserving.cancelled() and reserving.exception() is None:
            books.ticket = reserving.result()  # reserved, then the request failed: still settled
            if books.ticket is not None and self.quotas is not None:
                await self.quotas.settle_soon(books.ticket, actual_tokens=0, actual_cost_usd=0.0)

    def _plan_cache(self) -> None:
        cache, books = self.cache, self.books
        if cache is None:
            return
        key = cache.key_for(
            config=books.snapshot.config,
            tenant=cache_tenant(books.principal),
            model=books.chat.model,
            request={"messages": books.chat.messages, **books.chat.params},
            opt_in=self.policy.opt_in,
        )
        if key is None:
            return
        books.cache_write = self.policy.write
        self.cache_key = key if self.policy.read else None
        books.trace.cache_key = key
        if not self.policy.read:
            metrics.CACHE_REQUESTS.labels(result="bypass").inc()

    async def _admit(self, reserving: asyncio.Future[QuotaTicket | None]) -> dict[str, Any] | None:
        """The reservation passed (its 429 raised) and the cache's answer: an entry found or the
        leader's, or ``None`` to call upstream (as the single flight's leader, holding its lock)."""
        cache, key, books = self.cache, self.cache_key, self.books
        if cache is None or key is None:
            books.ticket = await reserving
            return None
        remaining = books.trace.deadline - asyncio.get_running_loop().time()
        flight = self.flight = await cache.cache.enter_flight(key, wait_s=remaining, count_miss=False)
        books.ticket = await reserving  # a refused request counts as neither a hit nor a miss
        if not flight and flight.entry is not None:
            metrics.CACHE_REQUESTS.labels(result="hit").inc()  # stored, or the leader's
            books.cache_served = flight.entry.model_served
            return flight.entry.response
        if not flight.checked:  # the in-process store, or a waiter whose leader failed: look now
            entry = await cache.lookup_entry(key=key)
            if entry is None:
                return None
            books.cache_served = entry.model_served
            return entry.response
        if flight.leader:
            metrics.CACHE_REQUESTS.labels(result="miss").inc()
        return None

    async def _reserve(self) -> QuotaTicket | None:
        limiter = self.quotas
        if limiter is None:
            return None
        books = self.books
        chat, snapshot = books.chat, books.snapshot
        max_out = chat.params.get("max_completion_tokens") or chat.params.get("max_tokens")
        config = snapshot.config.quotas
        limits = limiter.limits_for(books.principal, config=config)
        estimate = limits.token_estimate(
            prompt_tokens=chat.prompt_tokens,
            max_tokens=int(max_out) if max_out else None,
            default_output=min(config.completion_estimate_tokens, snapshot.max_output_tokens),
        )
        worst_cost = (
            chat.prompt_tokens * snapshot.max_price_input
            + int(max_out or snapshot.max_output_tokens) * snapshot.max_price_output
        ) / 1e6
        return await limiter.check_and_reserve(
            request_id=books.trace.request_id,
            principal=books.principal,
            estimated_tokens=estimate,
            estimated_cost_usd=worst_cost,
            limits=limits,
            config=config,
        )


def cache_tenant(principal: Principal) -> str:
    """The cache's tenant: principals whose allow-lists differ never share entries, so a cached
    answer from a model one key may not use is never served to it (issue #18)."""
    if principal.model_policy is None:
        return principal.tenant
    lists = "\n".join([*sorted(principal.allowed_models), "|", *sorted(principal.user_allowed_models)])
    return f"{principal.tenant}~{hashlib.sha256(lists.encode()).hexdigest()[:16]}"
