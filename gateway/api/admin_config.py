"""Operator actions on the routing config and circuits (admin only)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.responses import OrjsonResponse as ORJSONResponse
from gateway.deps import AppStateDep, PrincipalDep
from gateway.errors import InvalidRequest, NotFound, PermissionDenied
from gateway.routing.config import ConfigError
from gateway.security.principal import Principal

router = APIRouter(prefix="/admin", tags=["admin"])


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied("This endpoint requires the admin role")


@router.post("/config/reload")
async def reload_config(state: AppStateDep, principal: PrincipalDep) -> ORJSONResponse:
    _require_admin(principal)
    try:
        snapshot = state.holder.load()
    except ConfigError as exc:
        raise InvalidRequest(str(exc), code="invalid_config") from exc
    return ORJSONResponse({"status": "reloaded", "models": sorted(snapshot.targets)})


@router.get("/circuits")
async def list_circuits(state: AppStateDep, principal: PrincipalDep) -> ORJSONResponse:
    _require_admin(principal)
    return ORJSONResponse({"circuits": await state.holder.circuits.shared_snapshot()})


@router.post("/circuits/{target}/reset")
async def reset_circuit(target: str, state: AppStateDep, principal: PrincipalDep) -> ORJSONResponse:
    _require_admin(principal)
    if not await state.holder.circuits.shared_reset(target):
        raise NotFound(f"no circuit state for {target!r}")
    return ORJSONResponse({"status": "reset", "target": target})
