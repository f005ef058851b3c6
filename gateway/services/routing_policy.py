"""Read and set the per-key / per-user cap on the routing tier (``max_route_tier``)."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import ApiKey, User
from gateway.db.repositories.api_keys import ApiKeyRepository
from gateway.db.repositories.users import UserRepository
from gateway.errors import InvalidRequest, NotFound
from gateway.schemas.routing_policy import RoutePolicyOut
from gateway.security.authenticator import Authenticator
from gateway.security.principal import Principal

log = structlog.get_logger(__name__)


def _split(scope: str) -> tuple[str, str]:
    kind, _, ident = scope.partition(":")
    if kind not in ("key", "user") or not ident:
        raise InvalidRequest("scope must be key:<api key id> or user:<user id>", param="scope")
    return kind, ident


async def scope_owner(session: AsyncSession, scope: str) -> ApiKey | User:
    """The API key or user a policy scope (``key:<id>`` / ``user:<id>``) names; 404 otherwise."""
    kind, ident = _split(scope)
    if kind == "key":
        found = await ApiKeyRepository(session).get_with_user_or_none(ident)
        if found is None:
            raise NotFound(f"no API key {ident!r}")
        return found[0]
    user = await UserRepository(session).get_or_none(ident)
    if user is None:
        raise NotFound(f"no user {ident!r}")
    return user


async def set_on_scope(
    session: AsyncSession, scope: str, authenticator: Authenticator, **values: Any
) -> None:
    """Write per-key or per-user policy columns and drop that principal from the auth cache."""
    owner = await scope_owner(session, scope)
    for name, value in values.items():
        setattr(owner, name, value)
    await session.flush()
    if isinstance(owner, ApiKey):
        authenticator.invalidate_key(key_id=owner.id)
    else:
        authenticator.invalidate_user(user_id=owner.id)


async def get(session: AsyncSession, *, scope: str) -> RoutePolicyOut:
    owner = await scope_owner(session, scope)
    return RoutePolicyOut(scope=scope, max_route_tier=owner.max_route_tier)


async def put(
    session: AsyncSession,
    *,
    scope: str,
    max_route_tier: str | None,
    actor: Principal,
    authenticator: Authenticator,
) -> RoutePolicyOut:
    await set_on_scope(session, scope, authenticator, max_route_tier=max_route_tier)
    log.info("route_policy_updated", scope=scope, max_route_tier=max_route_tier, by=actor.user_id)
    return RoutePolicyOut(scope=scope, max_route_tier=max_route_tier)
