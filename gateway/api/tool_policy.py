"""Admin tool policy: ``/admin/tool-policy/key:<id>`` and ``/admin/tool-policy/user:<id>``.

``allowed_tools`` lists the server tools a key or a user may use (docs/tools.md, "Which tools a
request gets"); empty means no restriction; a key's list and its owner's both apply. Effective at
once on this replica (the authenticator's cache entry is dropped) and within
``api_key_cache_ttl_s`` on the others.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import AccountsDep, AdminDep, SessionDep
from gateway.schemas.tool_policy import ToolPolicy, ToolPolicyOut
from gateway.services import tool_policy

router = APIRouter(prefix="/admin/tool-policy", tags=["admin"])


@router.get("/{scope}", response_model=ToolPolicyOut)
async def get_policy(scope: str, _: AdminDep, session: SessionDep) -> ToolPolicyOut:
    return await tool_policy.get(session, scope=scope)


@router.put("/{scope}", response_model=ToolPolicyOut)
async def put_policy(
    scope: str, body: ToolPolicy, admin: AdminDep, accounts: AccountsDep, session: SessionDep
) -> ToolPolicyOut:
    return await tool_policy.put(
        session,
        scope=scope,
        allowed_tools=body.allowed_tools,
        actor=admin,
        authenticator=accounts.authenticator,
    )
