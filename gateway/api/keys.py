"""API key routes. Who may call: a signed-in user with a login session (JWT), on their own keys only."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway.deps import AccountsDep, SessionDep, SessionUserDep
from gateway.schemas.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut, ApiKeyUpdate

router = APIRouter(prefix="/api/keys", tags=["api-keys"])


@router.post("", status_code=201, response_model=ApiKeyCreated)
async def create_key(
    body: ApiKeyCreate, principal: SessionUserDep, accounts: AccountsDep, session: SessionDep
) -> ApiKeyCreated:
    key, secret = await accounts.keys.create(
        session,
        principal=principal,
        name=body.name,
        expires_at=body.expires_at,
        allowed_models=body.allowed_models,
        allowed_tools=body.allowed_tools,
        rpm_limit=body.rpm_limit,
        tpm_limit=body.tpm_limit,
        max_route_tier=body.max_route_tier,
    )
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=secret)


@router.get("", response_model=ApiKeyList)
async def list_keys(principal: SessionUserDep, accounts: AccountsDep, session: SessionDep) -> ApiKeyList:
    keys = await accounts.keys.list(session, principal=principal)
    return ApiKeyList(data=[ApiKeyOut.model_validate(k) for k in keys])


@router.patch("/{key_id}", response_model=ApiKeyOut)
async def update_key(
    key_id: str, body: ApiKeyUpdate, principal: SessionUserDep, accounts: AccountsDep, session: SessionDep
) -> ApiKeyOut:
    """The key's routing policy (``max_route_tier``); another user's key id is a 404."""
    key = await accounts.keys.set_route_policy(
        session, principal=principal, key_id=key_id, max_route_tier=body.max_route_tier
    )
    return ApiKeyOut.model_validate(key)


@router.delete("/{key_id}", status_code=204)
async def revoke_key(
    key_id: str, principal: SessionUserDep, accounts: AccountsDep, session: SessionDep
) -> Response:
    """Another user's key id is reported as 404, exactly like a missing one."""
    await accounts.keys.revoke(session, principal=principal, key_id=key_id)
    return Response(status_code=204)
