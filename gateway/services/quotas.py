"""Admin use cases on quotas: whose limits a scope names, its live usage, and changing them.

A scope is ``key:<api key id>`` or ``user:<user id>``. Changes take effect at once on this replica
(the authenticator's cache entry is dropped) and within ``api_key_cache_ttl_s`` elsewhere.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.cache import QuotaLimiter, ScopeLimits, key_scope, user_scope
from gateway.config.quotas import QuotaConfig
from gateway.db.repositories.api_keys import ApiKeyRepository
from gateway.db.repositories.users import UserRepository
from gateway.errors import InvalidRequest, NotFound
from gateway.security.authenticator import Authenticator
from gateway.security.principal import Principal, Role

ScopeKind = Literal["key", "user"]


async def quota_subject(session: AsyncSession, *, kind: ScopeKind, ident: str) -> Principal:
    """The principal whose limits apply to the scope (its key's overrides, its user's tier)."""
    if kind == "key":
        found = await ApiKeyRepository(session).get_with_user_or_none(ident)
        if found is None:
            raise NotFound(f"no API key {ident!r}")
        key, user = found
        return Principal(
            user_id=user.id,
            role=Role(user.role),
            tier=user.tier,
            api_key_id=key.id,
            rpm_limit=key.rpm_limit,
            tpm_limit=key.tpm_limit,
        )
    user_row = await UserRepository(session).get_or_none(ident)
    if user_row is None:
        raise NotFound(f"no user {ident!r}")
    return Principal(user_id=user_row.id, role=Role(user_row.role), tier=user_row.tier)


async def quota_report(
    limiter: QuotaLimiter, *, quotas: QuotaConfig, subject: Principal, kind: ScopeKind, ident: str
) -> dict[str, Any]:
    """Current usage against every limit of the scope, from the live backend."""
    scope = key_scope(ident) if kind == "key" else user_scope(ident)
    limits = next(
        (item for item in limiter.limits_for(subject, config=quotas).scopes if item.scope == scope),
        ScopeLimits(scope),
    )
    report = await limiter.usage(principal_scope=scope, limits=limits)
    return {**report, "tier": subject.tier}


async def update_quota(
    session: AsyncSession,
    *,
    kind: ScopeKind,
    ident: str,
    changes: dict[str, Any],
    quotas: QuotaConfig,
    authenticator: Authenticator,
) -> None:
    """A key's RPM/TPM override, or a user's tier (a user's limits come from their tier)."""
    if kind == "key":
        if "tier" in changes:
            raise InvalidRequest("a key's tier is its user's: PATCH user:<id> instead", param="tier")
        found = await ApiKeyRepository(session).get_with_user_or_none(ident)
        if found is None:
            raise NotFound(f"no API key {ident!r}")
        key, _user = found
        for field, value in changes.items():
            setattr(key, field, value)
        await session.flush()
        authenticator.invalidate_key(key_id=key.id)
        return
    if set(changes) - {"tier"}:
        raise InvalidRequest('a user\'s limits come from their tier: send {"tier": ...}', param="tier")
    if "tier" in changes and changes["tier"] not in quotas.tiers:
        raise InvalidRequest(f"unknown tier {changes['tier']!r}", param="tier")
    users = UserRepository(session)
    user_row = await users.get_or_none(ident)
    if user_row is None:
        raise NotFound(f"no user {ident!r}")
    await users.update(user_row, **changes)
    authenticator.invalidate_user(user_id=user_row.id)
