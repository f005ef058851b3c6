"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway.api.responses import OrjsonResponse as ORJSONResponse
from gateway.deps import AppStateDep
from gateway.lifespan import AppState
from gateway.observability.metrics import render_metrics

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> ORJSONResponse:
    return ORJSONResponse({"status": "ok"})


async def _database_ok(state: AppState) -> bool:
    assert state.accounts is not None
    try:
        async with asyncio.timeout(1.0), state.accounts.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (TimeoutError, OSError, SQLAlchemyError):
        return False
    return True


@router.get("/readyz")
async def readyz(state: AppStateDep) -> ORJSONResponse:
    checks: dict[str, bool] = {"config": state.holder.loaded, "draining": state.draining}
    ready = checks["config"] and not state.draining
    if state.accounts is not None:
        checks["database"] = await _database_ok(state)
        ready = ready and checks["database"]
    if state.backends is not None and state.backends.kind == "redis":
        checks["redis"] = await state.backends.ping()
        if state.holder.loaded and state.holder.current.config.quotas.fail_mode == "closed":
            ready = ready and checks["redis"]
    body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": checks}
    if state.holder.loaded:
        # which routing config this worker runs (every worker: GET /admin/config/status)
        holder = state.holder
        body["config"] = {"hash": holder.config_hash, "reload_error": holder.last_error is not None}
    if state.mcp_clients is not None and state.mcp_clients.connections:
        body["mcp"] = state.mcp_clients.health()  # detail only: a down MCP server does not unready Prism
    return ORJSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    body, content_type = render_metrics()
    return Response(content=body, media_type=content_type)
