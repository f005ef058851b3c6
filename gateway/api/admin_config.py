"""Operator actions on the routing config and circuits (admin only).

Admins always sign in, whatever ``GATEWAY_AUTH_ENABLED`` says of ``/v1`` (with it off, ``/v1``
callers are anonymous, and these routes used to refuse an admin's own token with a 403)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.responses import OrjsonResponse as ORJSONResponse
from gateway.config.routing import ConfigError
from gateway.deps import AdminDep, AppStateDep
from gateway.errors import InvalidRequest, NotFound

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/config/reload")
async def reload_config(
    state: AppStateDep,
    _: AdminDep,
    wait_s: Annotated[float | None, Query(ge=0, le=60)] = None,
) -> ORJSONResponse:
    """Reload the routing file in every worker of every replica (``gateway/config_sync.py``).

    The file is validated here first: an invalid one is refused (400 ``invalid_config``) and nothing
    is sent, so every worker keeps its running config. Otherwise the answer lists every worker with
    the config hash it runs; ``converged`` is true once all of them run this worker's hash.
    ``wait_s`` bounds the wait for the other workers (default ``GATEWAY_CONFIG_RELOAD_WAIT_S``).
    """
    sync = state.config_sync
    try:
        if sync is None:
            state.holder.reload()
            report: dict[str, object] = {"hash": state.holder.config_hash, "scope": "process"}
        else:
            report = await sync.reload_everywhere(wait_s=wait_s)
    except ConfigError as exc:
        raise InvalidRequest(str(exc), code="invalid_config") from exc
    return ORJSONResponse({"status": "reloaded", "models": sorted(state.holder.current.targets), **report})


@router.get("/config/status")
async def config_status(state: AppStateDep, _: AdminDep) -> ORJSONResponse:
    """Which replica and worker runs which routing config hash (workers seen in the last seconds)."""
    if state.config_sync is None:
        return ORJSONResponse({"hash": state.holder.config_hash, "scope": "process", "workers": []})
    return ORJSONResponse(await state.config_sync.describe())


@router.get("/circuits")
async def list_circuits(state: AppStateDep, _: AdminDep) -> ORJSONResponse:
    return ORJSONResponse({"circuits": await state.holder.circuits.shared_snapshot()})


@router.post("/circuits/{target}/reset")
async def reset_circuit(target: str, state: AppStateDep, _: AdminDep) -> ORJSONResponse:
    if not await state.holder.circuits.shared_reset(target):
        raise NotFound(f"no circuit state for {target!r}")
    return ORJSONResponse({"status": "reset", "target": target})
