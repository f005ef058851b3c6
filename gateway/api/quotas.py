"""Admin view and control of quotas: ``/admin/quotas/key:<id>`` and ``/admin/quotas/user:<id>``.

GET shows current usage against every limit (RPM, TPM, tokens per day, monthly budget) from the
live backend; PATCH changes a key's RPM/TPM override or a user's tier, effective at once on this
replica (the authenticator's cache entry is dropped) and within ``api_key_cache_ttl_s`` elsewhere.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway.api.responses import OrjsonResponse
from gateway.cache import QuotaLimiter, ScopeLimits, key_scope, user_scope
from gateway.config.quotas import QuotaConfig
from gateway.db.repositories.api_keys import ApiKeyRepository
from gateway.db.repositories.users import UserRepository
from gateway.deps import AccountsDep, AdminDep, AppStateDep, SessionDep
from gateway.errors import InvalidRequest, NotFound, ServiceUnavailable
from gateway.schemas.quotas import QuotaPatch
from gateway.security.principal import Principal, Role

router = APIRouter(prefix="/admin/quotas", tags=["admin"])


def _split(scope: str) -> tuple[str, str]:
    kind, _, ident = scope.partition(":")
    if kind not in ("key", "user") or not ident:
        raise InvalidRequest("scope must be key:<api key id> or user:<user id>", param="scope")
    return kind, ident


async def _subject(session: SessionDep, kind: str, ident: str) -> Principal:
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


def _limits(limiter: QuotaLimiter, config: QuotaConfig, subject: Principal, scope: str) -> ScopeLimits:
    limits = limiter.limits_for(subject, config=config)
    return next((item for item in limits.scopes if item.scope == scope), ScopeLimits(scope))


async def _report(state: AppStateDep, subject: Principal, kind: str, ident: str) -> dict[str, Any]:
    if state.backends is None:
        raise ServiceUnavailable("quotas are not configured")
    limiter = state.backends.quotas
    config = state.holder.current.config.quotas
    scope = key_scope(ident) if kind == "key" else user_scope(ident)
    report = await limiter.usage(principal_scope=scope, limits=_limits(limiter, config, subject, scope))
    return {**report, "tier": subject.tier}


@router.get("/{scope}")
async def get_quota(scope: str, state: AppStateDep, session: SessionDep, _: AdminDep) -> OrjsonResponse:
    kind, ident = _split(scope)
    return OrjsonResponse(await _report(state, await _subject(session, kind, ident), kind, ident))


@router.patch("/{scope}")
async def patch_quota(
    scope: str, body: QuotaPatch, state: AppStateDep, session: SessionDep, accounts: AccountsDep, _: AdminDep
) -> OrjsonResponse:
    kind, ident = _split(scope)
    changes = body.model_dump(exclude_unset=True)
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
        accounts.authenticator.invalidate_key(key_id=key.id)
    else:
        if set(changes) - {"tier"}:
            raise InvalidRequest('a user\'s limits come from their tier: send {"tier": ...}', param="tier")
        if "tier" in changes and changes["tier"] not in state.holder.current.config.quotas.tiers:
            raise InvalidRequest(f"unknown tier {changes['tier']!r}", param="tier")
        users = UserRepository(session)
        user_row = await users.get_or_none(ident)
        if user_row is None:
            raise NotFound(f"no user {ident!r}")
        await users.update(user_row, **changes)
        accounts.authenticator.invalidate_user(user_id=user_row.id)
    return OrjsonResponse(await _report(state, await _subject(session, kind, ident), kind, ident))
