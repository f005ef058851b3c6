"""Read and set the per-key / per-user server tool allow-lists (``allowed_tools``, docs/tools.md)."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.repositories.api_keys import ApiKeyRepository
from gateway.db.repositories.users import UserRepository
from gateway.errors import NotFound
from gateway.schemas.tool_policy import ToolPolicyOut
from gateway.security.authenticator import Authenticator
from gateway.security.principal import Principal
from gateway.services.routing_policy import _split as split_scope

log = structlog.get_logger(__name__)


async def get(session: AsyncSession, *, scope: str) -> ToolPolicyOut:
    kind, ident = split_scope(scope)
    if kind == "key":
        found = await ApiKeyRepository(session).get_with_user_or_none(ident)
        if found is None:
            raise NotFound(f"no API key {ident!r}")
        return ToolPolicyOut(scope=scope, allowed_tools=list(found[0].allowed_tools or ()))
    user = await UserRepository(session).get_or_none(ident)
    if user is None:
        raise NotFound(f"no user {ident!r}")
    return ToolPolicyOut(scope=scope, allowed_tools=list(user.allowed_tools or ()))


async def put(
    session: AsyncSession,
    *,
    scope: str,
    allowed_tools: list[str],
    actor: Principal,
    authenticator: Authenticator,
) -> ToolPolicyOut:
    kind, ident = split_scope(scope)
    tools = sorted(set(allowed_tools))
    if kind == "key":
        repo = ApiKeyRepository(session)
        found = await repo.get_with_user_or_none(ident)
        if found is None:
            raise NotFound(f"no API key {ident!r}")
        await repo.set_allowed_tools(found[0], tools)
        authenticator.invalidate_key(key_id=ident)
    else:
        users = UserRepository(session)
        user = await users.get_or_none(ident)
        if user is None:
            raise NotFound(f"no user {ident!r}")
        await users.update(user, allowed_tools=tools)
        authenticator.invalidate_user(user_id=ident)
    log.info("tool_policy_updated", scope=scope, allowed_tools=tools, by=actor.user_id)
    return ToolPolicyOut(scope=scope, allowed_tools=tools)
