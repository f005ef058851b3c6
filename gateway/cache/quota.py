"""Per-key and per-user quotas: requests and tokens per minute, tokens per day, monthly budget.

Algorithms (justified in ``docs/cache-and-quotas.md``):

* **Requests per minute: sliding-window log.** Each admitted request is a member of a
  sorted set scored by Redis's own clock (``TIME`` inside the script, so several gateway
  processes share one clock). It is exact — never more than ``rpm`` requests in any 60 s
  window, no boundary bursts as with fixed windows — and gives an exact ``Retry-After``
  (when the oldest request leaves the window). GCRA would need O(1) memory instead of
  O(rpm), but it smooths admission to one request every ``60/rpm`` seconds after the
  burst, which is not what "N requests per minute" means to clients; RPM limits are
  small (tens to thousands) so the log stays small.
* **Tokens per minute: sliding-window counter** (two fixed one-minute buckets, the previous
  weighted by the part of it still inside the window). O(1) whatever the token volume;
  the approximation assumes tokens were spread evenly over the previous minute.
* **Tokens per day / monthly budget:** fixed UTC calendar periods (what users are billed
  by). Usage = settled actuals + pending reservations; a reservation carries a TTL and is
  released by the next check after it expires, so a crashed request cannot leak it.

Everything for one request — purge expired reservations, check every scope, then count
the request and reserve tokens and worst-case cost in every scope — is ONE Lua script, so
concurrent gateways can neither overshoot a limit nor overspend a budget.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.background import BackgroundWorker
from gateway.cache.quota_backends import (
    WINDOW_MS,
    QuotaBackend,
    ReserveArgs,
    ReserveResult,
    ScopeArgs,
    ScopeStats,
    SettleArgs,
)
from gateway.config.quotas import QuotaConfig, QuotaTier
from gateway.errors import QuotaExceeded, RateLimited, RequestTooLarge, ServiceUnavailable
from gateway.observability.metrics import BACKEND_ERRORS, QUOTA_REJECTIONS, QUOTA_SETTLE_QUEUE
from gateway.security.principal import Principal

log = structlog.get_logger(__name__)

MICRO = 1_000_000


@dataclass(frozen=True, slots=True)
class ScopeLimits:
    """The limits of one scope (``key:<api key id>`` or ``user:<tenant>``)."""

    scope: str
    rpm: int | None = None
    tpm: int | None = None
    tokens_per_day: int | None = None
    monthly_budget_usd: float | None = None

    @classmethod
    def from_tier(cls, scope: str, tier: QuotaTier) -> ScopeLimits:
        return cls(scope, tier.rpm, tier.tpm, tier.tokens_per_day, tier.monthly_budget_usd)

    @property
    def unlimited(self) -> bool:
        return (
            self.rpm is None
            and self.tpm is None
            and self.tokens_per_day is None
            and (self.monthly_budget_usd is None)
        )


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    """Every scope one request counts against. Built by :meth:`QuotaLimiter.limits_for`."""

    scopes: tuple[ScopeLimits, ...] = ()

    def token_estimate(self, *, prompt_tokens: int, max_tokens: int | None, default_output: int) -> int:
        """Tokens to reserve: the prompt plus ``max_tokens`` when the client set it, else a default
        estimate clamped to what the tightest TPM limit leaves. A request that no minute could ever
        admit (the prompt alone, or the prompt plus the ``max_tokens`` asked for, above a TPM limit)
        is a ``RequestTooLarge`` (400): waiting would not help, so there is no retry hint."""
        tpm_limits = [(s.tpm, s.scope) for s in self.scopes if s.tpm is not None]
        tightest, scope = min(tpm_limits) if tpm_limits else (None, "")
        needed = prompt_tokens + (max_tokens or 1)
        if tightest is not None and needed > tightest:
            owner = "API key" if scope.startswith("key:") else "user"
            asked = f" plus max_tokens {max_tokens}" if max_tokens else ""
            raise RequestTooLarge(
                f"This request needs at least {needed} tokens (the prompt's {prompt_tokens}{asked}), "
                f"more than this {owner}'s limit of {tightest} tokens per minute: it can never be "
                "admitted. Shorten the prompt or lower max_tokens.",
                param="max_tokens" if max_tokens and prompt_tokens < tightest else "messages",
            )
        if max_tokens:
            return needed
        output = default_output if tightest is None else min(default_output, tightest - prompt_tokens)
        return prompt_tokens + max(output, 1)


def key_scope(api_key_id: str) -> str:
    return f"key:{api_key_id}"


def user_scope(user: str) -> str:
    return f"user:{user}"


def format_duration(seconds: float) -> str:
    """OpenAI's (Go's) duration format: ``20ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    total = round(seconds, 3)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = f"{secs:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{int(hours)}h{int(minutes)}m{sec_text}s"
    if minutes:
        return f"{int(minutes)}m{sec_text}s"
    return f"{sec_text}s"


def _periods(now: datetime) -> tuple[str, str, int]:
    """(UTC day id, UTC month id, epoch ms of the next month's start)."""
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return now.strftime("%Y%m%d"), now.strftime("%Y%m"), int(nxt.timestamp() * 1000)


@functools.lru_cache(maxsize=4)
def _periods_of_day(day_number: int) -> tuple[str, str, int]:
    return _periods(datetime.fromtimestamp(day_number * 86_400, UTC))


def _current_periods() -> tuple[str, str, int]:
    """``_periods`` of now, computed once per UTC day (it runs on every request)."""
    return _periods_of_day(int(time.time() // 86_400))


def _rate_headers(limits: tuple[ScopeLimits, ...], stats: tuple[ScopeStats, ...]) -> dict[str, str]:
    """``x-ratelimit-*`` from the most constrained scope for requests and for tokens."""
    headers: dict[str, str] = {}
    req = [
        (lim.rpm - st.rpm_used, lim.rpm, st)
        for lim, st in zip(limits, stats, strict=False)
        if lim.rpm is not None
    ]
    if req:
        remaining, limit, st = min(req, key=lambda r: r[0])
        headers["x-ratelimit-limit-requests"] = str(limit)
        headers["x-ratelimit-remaining-requests"] = str(max(remaining, 0))
        headers["x-ratelimit-reset-requests"] = format_duration(st.rpm_reset_ms / 1000)
    tok = [
        (lim.tpm - st.tpm_used, lim.tpm, st)
        for lim, st in zip(limits, stats, strict=False)
        if lim.tpm is not None
    ]
    if tok:
        remaining, limit, st = min(tok, key=lambda r: r[0])
        headers["x-ratelimit-limit-tokens"] = str(limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(remaining, 0))
        headers["x-ratelimit-reset-tokens"] = format_duration(
            st.tpm_reset_ms / 1000 if st.tpm_used > 0 else 0
        )
    return headers


@dataclass(slots=True)
class QuotaTicket:
    """One request's reservation; pass it to :meth:`QuotaLimiter.settle` exactly once."""

    request_id: str
    scopes: tuple[str, ...]
    estimated_tokens: int
    estimated_cost_usd: float
    minute: int = -1
    degraded: bool = False
    """True when the backend was unavailable and the request was let through (fail-open)."""
    rate_headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False
    settled_marker_ttl_s: int | None = None
    """From the config the reservation was made under (the limiter's own when unset)."""

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers for the response (empty when no limits apply)."""
        return dict(self.rate_headers)


_REASONS: dict[str, tuple[str, str]] = {
    # reason -> (metric label, human description)
    "requests": ("rpm", "requests per minute (RPM)"),
    "tokens": ("tpm", "tokens per minute (TPM)"),
    "tokens_per_day": ("tpd", "tokens per day (TPD)"),
    "monthly_budget": ("budget", "monthly budget"),
}


class QuotaLimiter:
    """One per process. Requests pass their config snapshot's ``QuotaConfig`` to ``limits_for`` and
    ``check_and_reserve`` (a reload never changes a request mid-way, and nothing shared is reassigned
    per request); ``config`` is only the start-up default for callers that pass none."""

    def __init__(
        self, backend: QuotaBackend, config: QuotaConfig | None = None, *, max_pending_settles: int = 10_000
    ) -> None:
        self.backend = backend
        self.config = config or QuotaConfig()
        self.max_pending_settles = max_pending_settles
        self._pending: list[SettleArgs] = []
        self._flusher = BackgroundWorker(
            "quota_settle", self._flush, interval_s=None, drain=self._flush, stop_timeout_s=None
        )
        """Started on the first ``settle_soon``; each wake sends everything queued in one round trip."""
        self._stopped = False
        self._limits_memo: dict[tuple[object, ...], EffectiveLimits] = {}
        self._limits_config: QuotaConfig | None = None

    def _prefix(self, scope: str) -> str:
        return f"{self.backend.base_prefix}:q:{scope}"

    def limits_for(
        self,
        principal: Principal,
        *,
        config: QuotaConfig | None = None,
        key_override: QuotaTier | None = None,
        user_override: QuotaTier | None = None,
    ) -> EffectiveLimits:
        """Tier defaults from ``config`` (the request's config snapshot; the limiter's own
        start-up config when omitted), then the principal's own ``rpm_limit``/``tpm_limit``
        (per key), then the per-key / per-user overrides the caller read from the DB. Without
        overrides (the request path) the result is memoised per principal and config."""
        config = config or self.config
        if key_override is None and user_override is None:
            if self._limits_config is not config:
                self._limits_memo.clear()
                self._limits_config = config
            memo_key = (
                principal.tier,
                principal.api_key_id,
                principal.rpm_limit,
                principal.tpm_limit,
                principal.tenant,
            )
            limits = self._limits_memo.get(memo_key)
            if limits is None:
                limits = self._limits(config, principal, None, None)
                if len(self._limits_memo) >= 10_000:
                    self._limits_memo.clear()
                self._limits_memo[memo_key] = limits
            return limits
        return self._limits(config, principal, key_override, user_override)

    @staticmethod
    def _limits(
        config: QuotaConfig,
        principal: Principal,
        key_override: QuotaTier | None,
        user_override: QuotaTier | None,
    ) -> EffectiveLimits:
        tier = config.tiers.get(principal.tier) or config.tiers.get("default") or QuotaTier()
        scopes: list[ScopeLimits] = []
        if principal.api_key_id is not None:
            own = QuotaTier(rpm=principal.rpm_limit, tpm=principal.tpm_limit)
            scopes.append(
                ScopeLimits.from_tier(key_scope(principal.api_key_id), tier.merged(own).merged(key_override))
            )
        scopes.append(ScopeLimits.from_tier(user_scope(principal.tenant), tier.merged(user_override)))
        return EffectiveLimits(tuple(s for s in scopes if not s.unlimited))

    def _backend_failed(
        self, operation: str, exc: BaseException, *, fatal: bool, config: QuotaConfig | None = None
    ) -> None:
        BACKEND_ERRORS.labels(operation=operation).inc()
        log.warning(
            "quota_backend_error",
            operation=operation,
            error=type(exc).__name__,
            detail=str(exc),
            fail_mode=(config or self.config).fail_mode,
        )
        if fatal:
            raise ServiceUnavailable(
                "Rate limiting is temporarily unavailable; please retry shortly."
            ) from exc

    async def check_and_reserve(
        self,
        *,
        request_id: str,
        principal: Principal,
        estimated_tokens: int,
        estimated_cost_usd: float,
        limits: EffectiveLimits,
        config: QuotaConfig | None = None,
    ) -> QuotaTicket:
        """Check every scope in ``limits`` and, if all pass, count the request and reserve the
        estimated tokens and worst-case cost — atomically, in one backend round trip.

        Raises ``RateLimited`` (RPM, TPM, tokens per day) or ``QuotaExceeded`` (monthly budget)
        with ``Retry-After`` and ``x-ratelimit-*`` headers; ``ServiceUnavailable`` when the backend
        is down and ``fail_mode`` is ``closed`` (with ``open`` the request passes, degraded).
        ``config``: the request's config snapshot (the limiter's start-up config when omitted).
        """
        del principal  # the scopes in ``limits`` already identify it
        config = config or self.config
        scopes = limits.scopes
        est_tokens = max(int(estimated_tokens), 0)
        ticket = QuotaTicket(request_id, tuple(s.scope for s in scopes), est_tokens, estimated_cost_usd)
        ticket.settled_marker_ttl_s = config.settled_marker_ttl_s
        if not scopes:
            return ticket
        day, month, next_month = _current_periods()
        args = ReserveArgs(
            request_id=request_id,
            est_tokens=est_tokens,
            est_micro_usd=max(math.ceil(estimated_cost_usd * MICRO), 0),
            ttl_ms=config.reservation_ttl_s * 1000,
            day_id=day,
            month_id=month,
            next_month_ms=next_month,
            scopes=tuple(
                ScopeArgs(
                    self._prefix(s.scope),
                    -1 if s.rpm is None else s.rpm,
                    -1 if s.tpm is None else s.tpm,
                    -1 if s.tokens_per_day is None else s.tokens_per_day,
                    -1 if s.monthly_budget_usd is None else math.floor(s.monthly_budget_usd * MICRO),
                )
                for s in scopes
            ),
        )
        try:
            result = await self.backend.reserve(args)
        except Exception as exc:
            self._backend_failed("quota_reserve", exc, fatal=config.fail_mode == "closed", config=config)
            ticket.degraded = True
            return ticket
        if result.status == 0:
            raise self._refusal(result, scopes)
        ticket.minute = result.minute
        ticket.rate_headers = _rate_headers(scopes, result.stats)
        return ticket

    @staticmethod
    def _refusal(result: ReserveResult, scopes: tuple[ScopeLimits, ...]) -> RateLimited:
        label, what = _REASONS.get(result.reason, ("other", result.reason))
        QUOTA_REJECTIONS.labels(limit=label).inc()
        scope = scopes[result.scope_index] if 0 <= result.scope_index < len(scopes) else None
        owner = "API key" if scope is not None and scope.scope.startswith("key:") else "user"
        retry_s = result.retry_ms / 1000
        headers = _rate_headers(scopes, result.stats)
        headers["retry-after"] = str(max(1, math.ceil(retry_s)))
        headers["retry-after-ms"] = str(max(1, result.retry_ms))
        if result.reason == "monthly_budget":
            return QuotaExceeded(
                f"You exceeded the monthly budget of this {owner}. Please contact your administrator.",
                headers=headers,
            )
        return RateLimited(
            f"Rate limit reached for {what} on this {owner}. Please try again in {format_duration(retry_s)}.",
            headers=headers,
        )

    def _settle_args(
        self, ticket: QuotaTicket, actual_tokens: int, actual_cost_usd: float
    ) -> SettleArgs | None:
        """The settlement of ``ticket``, or ``None`` when it has none left to do (marks it settled)."""
        if ticket.settled or not ticket.scopes:
            ticket.settled = True
            return None
        ticket.settled = True
        day, month, _ = _current_periods()
        return SettleArgs(
            request_id=ticket.request_id,
            actual_tokens=max(int(actual_tokens), 0),
            actual_micro_usd=max(math.ceil(actual_cost_usd * MICRO), 0),
            est_tokens=ticket.estimated_tokens,
            minute=ticket.minute,
            day_id=day,
            month_id=month,
            done_ttl_ms=(ticket.settled_marker_ttl_s or self.config.settled_marker_ttl_s) * 1000,
            prefixes=tuple(self._prefix(s) for s in ticket.scopes),
        )

    async def settle(self, ticket: QuotaTicket, *, actual_tokens: int, actual_cost_usd: float) -> None:
        """Replace the reservation by the actual usage. Exactly once per request id: later
        calls (with this or another ticket of the same id) are no-ops. Never raises."""
        args = self._settle_args(ticket, actual_tokens, actual_cost_usd)
        if args is None:
            return
        try:
            await self.backend.settle(args)
        except Exception as exc:
            self._backend_failed("quota_settle", exc, fatal=False)

    async def settle_soon(self, ticket: QuotaTicket, *, actual_tokens: int, actual_cost_usd: float) -> None:
        """``settle`` off the request path: queued, and sent with whatever else is queued in one
        round trip by a background task (started on first use, drained by :meth:`aclose`). The
        queue is bounded: when it is full this settles inline instead (back-pressure, never a drop).
        A settlement lost with the process (SIGKILL) leaves a reservation that expires after
        ``reservation_ttl_s``: the scope is over-counted, never under-counted, until then."""
        if self._stopped or len(self._pending) >= self.max_pending_settles:
            await self.settle(ticket, actual_tokens=actual_tokens, actual_cost_usd=actual_cost_usd)
            return
        args = self._settle_args(ticket, actual_tokens, actual_cost_usd)
        if args is None:
            return
        self._pending.append(args)
        QUOTA_SETTLE_QUEUE.inc()
        self._flusher.start()
        self._flusher.wake()

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            QUOTA_SETTLE_QUEUE.dec(len(batch))
            try:
                await self.backend.settle_many(batch)
            except Exception as exc:
                self._backend_failed("quota_settle", exc, fatal=False)

    async def aclose(self) -> None:
        """Stop the background settler once it has sent what it holds (graceful shutdown); later
        settlements go inline."""
        self._stopped = True
        await self._flusher.aclose()

    async def usage(self, *, principal_scope: str, limits: ScopeLimits | None = None) -> dict[str, Any]:
        """Current usage of one scope (``key:<id>`` / ``user:<id>``) against ``limits`` (from the
        caller: tier defaults merged with the DB overrides). Raises ``ServiceUnavailable`` when
        the backend is down — this is an admin read, not a request path."""
        day, month, _ = _current_periods()
        try:
            u = await self.backend.usage(self._prefix(principal_scope), day, month)
        except Exception as exc:
            self._backend_failed("quota_usage", exc, fatal=True)
            raise  # unreachable: fatal=True raises
        lim = limits or ScopeLimits(principal_scope)

        def entry(used: float, limit: float | None, reset_s: float | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {"used": used, "limit": limit}
            out["remaining"] = None if limit is None else max(limit - used, 0)
            if reset_s is not None:
                out["reset"] = format_duration(reset_s)
            return out

        return {
            "scope": principal_scope,
            "requests_per_minute": entry(u.rpm_used, lim.rpm, u.rpm_reset_ms / 1000),
            "tokens_per_minute": entry(u.tpm_used, lim.tpm, u.tpm_reset_ms / 1000 if u.tpm_used else 0),
            "tokens_per_day": entry(u.tokens_today + u.pending_tokens, lim.tokens_per_day)
            | {
                "settled": u.tokens_today,
                "reserved": u.pending_tokens,
            },
            "monthly_budget_usd": entry(
                (u.micro_usd_month + u.pending_micro_usd) / MICRO, lim.monthly_budget_usd
            )
            | {"settled": u.micro_usd_month / MICRO, "reserved": u.pending_micro_usd / MICRO},
            "pending_reservations": u.reservations,
            "window_s": WINDOW_MS // 1000,
        }
