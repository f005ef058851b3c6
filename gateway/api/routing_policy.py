"""Admin routing policy: ``/admin/routing-policy/key:<id>`` and ``/admin/routing-policy/user:<id>``.

``max_route_tier`` caps the tier that ``model: "auto"`` may route to (e.g. ``cheap``: never the strong
models); a key's cap and its owner's both apply (the stricter wins). Effective at once on this replica (the
authenticator's cache entry is dropped) and within ``api_key_cache_ttl_s`` on the others.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import AccountsDep, AdminDep, SessionDep
from gateway.schemas.routing_policy import RoutePolicy, RoutePolicyOut
from gateway.services import routing_policy

router = APIRouter(prefix="/admin/routing-policy", tags=["admin"])


@router.get("/{scope}", response_model=RoutePolicyOut)
async def get_policy(scope: str, _: AdminDep, session: SessionDep) -> RoutePolicyOut:
    return await routing_policy.get(session, scope=scope)


@router.put("/{scope}", response_model=RoutePolicyOut)
async def put_policy(
    scope: str, body: RoutePolicy, admin: AdminDep, accounts: AccountsDep, session: SessionDep
) -> RoutePolicyOut:
    return await routing_policy.put(
        session,
        scope=scope,
        max_route_tier=body.max_route_tier,
        actor=admin,
        authenticator=accounts.authenticator,
    )
