"""Read and set the per-key / per-user cap on the routing tier (``max_route_tier``)."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

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


async def get(session: AsyncSession, *, scope: str) -> RoutePolicyOut:
    kind, ident = _split(scope)
    if kind == "key":
        found = await ApiKeyRepository(session).get_with_user_or_none(ident)
        if found is None:
            raise NotFound(f"no API key {ident!r}")
        return RoutePolicyOut(scope=scope, max_route_tier=found[0].max_route_tier)
    user = await UserRepository(session).get_or_none(ident)
    if user is None:
        raise NotFound(f"no user {ident!r}")
    return RoutePolicyOut(scope=scope, max_route_tier=user.max_route_tier)


async def put(
    session: AsyncSession,
    *,
    scope: str,
    max_route_tier: str | None,
    actor: Principal,
    authenticator: Authenticator,
) -> RoutePolicyOut:
    kind, ident = _split(scope)
    if kind == "key":
        repo = ApiKeyRepository(session)
        found = await repo.get_with_user_or_none(ident)
        if found is None:
            raise NotFound(f"no API key {ident!r}")
        await repo.set_max_route_tier(found[0], max_route_tier)
        authenticator.invalidate_key(key_id=ident)
    else:
        users = UserRepository(session)
        user = await users.get_or_none(ident)
        if user is None:
            raise NotFound(f"no user {ident!r}")
        await users.update(user, max_route_tier=max_route_tier)
        authenticator.invalidate_user(user_id=ident)
    log.info("route_policy_updated", scope=scope, max_route_tier=max_route_tier, by=actor.user_id)
    return RoutePolicyOut(scope=scope, max_route_tier=max_route_tier)
