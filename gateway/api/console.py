"""The operator console at ``/ui`` (static files, no build step) and local Swagger assets.

Who may call: ``/ui`` and its assets are public (they hold no data; every page reads the JSON APIs
with the signed-in user's bearer token, and those enforce RBAC). Also here, for the console:
``GET /admin/config`` (admin: the running routing config), ``POST /admin/experiments/{name}/canary/
{promote|rollback}`` (admin; every worker of every replica applies it, like ``reset``) and
``GET /api/usage`` (a signed-in user's own usage: the admin report with ``user_id`` forced to the
caller).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import AdminDep, AppStateDep, SessionDep, SessionUserDep
from gateway.errors import NotFound
from gateway.services.usage_queries import build_query, usage_export_csv, usage_report

STATIC = Path(__file__).resolve().parents[1] / "ui" / "static"
SWAGGER = "/ui/static/vendor/swagger-ui"

router = APIRouter(tags=["console"])


@router.get("/ui", include_in_schema=False)
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/", include_in_schema=False)
async def ui_index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


@router.get("/admin/config")
async def running_config(state: AppStateDep, _: AdminDep) -> dict[str, Any]:
    """The routing config this worker runs (model settings name env vars, never secrets)."""
    holder = state.holder
    config = holder.current.config.model_dump(mode="json")
    return {"hash": holder.config_hash, "models": sorted(holder.current.targets), "config": config}


class CanaryActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=256)


@router.post("/admin/experiments/{name}/canary/{action}")
async def canary_action(
    admin: AdminDep,
    state: AppStateDep,
    name: Annotated[str, PathParam(max_length=128)],
    action: Literal["promote", "rollback"],
    body: CanaryActionIn | None = None,
) -> dict[str, Any]:
    """Promote (jump to the last step) or roll back (0%) the canary now, on every worker of every
    replica; ``shared`` is the decision, ``applied``/``workers`` how many live workers run it."""
    reason = (body.reason if body is not None else None) or f"admin {action}"
    sync = state.canary_sync
    if sync is None:
        canary = state.holder.experiments.act(name, action, reason=reason)
        shared = None
    else:
        shared = await sync.decide(name, action, reason=reason, actor=f"admin:{admin.user_id}")
        canary = state.holder.experiments.canary(name) if shared is not None else None
    if canary is None:
        raise NotFound(f"No canary in experiment {name!r}")
    return {"experiment": name, "action": action, "canary": canary.describe(), "shared": shared}


def _own_query(principal: Any, start: datetime | None, end: datetime | None, group_by: str | None) -> Any:
    return build_query(start=start, end=end, group_by=group_by, limit=1000, user_id=principal.user_id)


@router.get("/api/usage")
async def own_usage(
    principal: SessionUserDep,
    session: SessionDep,
    start: Annotated[datetime | None, Query()] = None,
    end: Annotated[datetime | None, Query()] = None,
    group_by: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """The caller's own usage, grouped like ``GET /admin/usage`` (``user_id`` is always theirs)."""
    query = _own_query(principal, start, end, group_by)
    data = await usage_report(session, query=query)
    return {
        "start": query.filters.start.isoformat(),
        "end": query.filters.end.isoformat(),
        "group_by": list(query.group_by),
        "data": data,
    }


@router.get("/api/usage/export")
async def own_usage_export(
    principal: SessionUserDep,
    session: SessionDep,
    start: Annotated[datetime | None, Query()] = None,
    end: Annotated[datetime | None, Query()] = None,
    group_by: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    body = await usage_export_csv(session, query=_own_query(principal, start, end, group_by))
    return Response(
        content=body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="usage.csv"'},
    )


def mount_console(app: FastAPI, *, docs: bool) -> None:
    """``/ui`` and its assets; ``/docs`` (when served) with Swagger UI from local files."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    if not docs:
        return

    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Prism - Swagger UI",
            swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
        )

    app.add_api_route("/docs", swagger, include_in_schema=False)
