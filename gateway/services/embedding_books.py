"""One embeddings request's books: its usage record, quota reservation and settlement, metrics and
access log fields, closed exactly once however the request ends (``services/embeddings.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.cache import QuotaLimiter, QuotaTicket
from gateway.errors import GatewayError, RequestTooLarge
from gateway.observability import access, metrics
from gateway.providers.embeddings import EmbeddingTarget
from gateway.runtime import RuntimeSnapshot
from gateway.security.principal import Principal
from gateway.services.accounting import UsageSink
from gateway.services.embedding_calls import CallStats
from gateway.usage.record import UsageRecord, UsageStatus

ROUTE = "/v1/embeddings"


class EmbeddingBooks:
    """One request's record, quota ticket and metrics, closed exactly once."""

    def __init__(
        self,
        *,
        record: UsageRecord,
        principal: Principal,
        snapshot: RuntimeSnapshot,
        usage: UsageSink | None,
        quotas: QuotaLimiter | None,
        label: Callable[[str], str],
    ) -> None:
        self.usage = usage
        self.quotas = quotas
        self._label_for = label
        self.record = record
        self.principal = principal
        self.snapshot = snapshot
        self.started = time.perf_counter()
        self.target: EmbeddingTarget | None = None
        self.ticket: QuotaTicket | None = None
        self.stats = CallStats()
        self.guard_header: str | None = None
        self.label = metrics.OTHER
        self.inputs = 0
        self.finished = False

    async def reserve(self, tokens: int, *, worst_cost: float) -> None:
        limiter = self.quotas
        if limiter is None:
            return
        config = self.snapshot.config.quotas
        limits = limiter.limits_for(self.principal, config=config)
        try:
            estimate = limits.token_estimate(prompt_tokens=tokens, max_tokens=None, default_output=0)
        except RequestTooLarge as exc:
            exc.param = "input"
            raise
        self.ticket = await limiter.check_and_reserve(
            request_id=self.record.request_id,
            principal=self.principal,
            estimated_tokens=estimate,
            estimated_cost_usd=worst_cost,
            limits=limits,
            config=config,
        )

    def served(self, target: EmbeddingTarget, *, cache_hit: bool) -> None:
        self.record.model_served = target.name
        self.record.cache_hit = cache_hit
        self.label = self._label_for(target.name)

    def count(self, tokens: int, *, cost: float) -> None:
        self.record.prompt_tokens = tokens
        self.record.cost_usd = cost

    def headers(self, *, cache: str) -> dict[str, str]:
        headers = {"x-prism-model": self.record.model_served or "", "x-prism-cache": cache}
        if self.guard_header:
            headers["x-prism-guard"] = self.guard_header
        if self.ticket is not None:
            headers.update(self.ticket.headers())
        return headers

    async def close(
        self, *, error: GatewayError | None = None, status: UsageStatus | None = None, http_status: int = 200
    ) -> None:
        if self.finished:
            return
        self.finished = True
        record, stats = self.record, self.stats
        elapsed = time.perf_counter() - self.started
        record.latency_ms = round(elapsed * 1000, 3)
        record.attempts = stats.attempts
        record.guard_flags = self.guard_header
        if error is not None:
            record.status = UsageStatus.ERROR if stats.attempts else UsageStatus.REJECTED
            record.http_status = error.status_code
            record.error_type = error.code or error.error_type
            metrics.ERRORS.labels(type=error.error_type).inc()
        else:
            record.status = status or UsageStatus.OK
            record.http_status = http_status if status is not None else 200
        if record.status is not UsageStatus.OK and not record.cache_hit:
            # what the upstream embedded (and billed) before the failure: batches that succeeded
            record.prompt_tokens = stats.billed_tokens
            config = self.target.config if self.target is not None else None
            record.cost_usd = config.cost(stats.billed_tokens) if config is not None else 0.0
            if not stats.billed_tokens:
                record.model_served = None
        self._metrics(elapsed)
        if self.usage is not None:
            self.usage.record(record)
        access.note_usage(record, key_prefix=self.principal.api_key_prefix)
        fields = access.current()
        if fields is not None:
            fields["embedding_inputs"] = self.inputs
        if self.ticket is not None and self.quotas is not None:
            await self.quotas.settle_soon(
                self.ticket, actual_tokens=record.prompt_tokens, actual_cost_usd=record.cost_usd
            )

    def _metrics(self, elapsed: float) -> None:
        record = self.record
        metrics.GATEWAY_OVERHEAD.labels(route=ROUTE).observe(max(elapsed - self.stats.provider_time_s, 0.0))
        if record.status is not UsageStatus.OK:
            return
        provider = record.provider or metrics.OTHER
        tier = record.tier or metrics.OTHER
        tokens = record.prompt_tokens
        metrics.TOKENS.labels(model=self.label, provider=provider, tier=tier, direction="input").inc(tokens)
        metrics.TOKEN_USAGE.labels(model=self.label, provider=provider, token_type="input").observe(tokens)
        if record.cost_usd:
            metrics.COST.labels(model=self.label, provider=provider, tier=tier).inc(record.cost_usd)
        source = "cache" if record.cache_hit else "upstream"
        metrics.EMBEDDING_INPUTS.labels(model=self.label, source=source).inc(self.inputs)
