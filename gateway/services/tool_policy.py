"""Read and set the per-key / per-user server tool allow-lists (``allowed_tools``, docs/tools.md)."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.schemas.tool_policy import ToolPolicyOut
from gateway.security.authenticator import Authenticator
from gateway.security.principal import Principal
from gateway.services.routing_policy import scope_owner, set_on_scope

log = structlog.get_logger(__name__)


async def get(session: AsyncSession, *, scope: str) -> ToolPolicyOut:
    owner = await scope_owner(session, scope)
    return ToolPolicyOut(scope=scope, allowed_tools=list(owner.allowed_tools or ()))


async def put(
    session: AsyncSession,
    *,
    scope: str,
    allowed_tools: list[str],
    actor: Principal,
    authenticator: Authenticator,
) -> ToolPolicyOut:
    tools = sorted(set(allowed_tools))
    await set_on_scope(session, scope, authenticator, allowed_tools=tools)
    log.info("tool_policy_updated", scope=scope, allowed_tools=tools, by=actor.user_id)
    return ToolPolicyOut(scope=scope, allowed_tools=tools)
