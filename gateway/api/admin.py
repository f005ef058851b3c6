"""Admin routes. Who may call: admins only (role ``admin``, JWT or API key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from gateway.deps import AccountsDep, AdminDep, SessionDep
from gateway.schemas.admin import UsageReport, UserList, UserPatch
from gateway.schemas.auth import UserOut
from gateway.services import users as user_service
from gateway.services.usage_queries import UsageQuery, build_query, usage_export_csv, usage_report

router = APIRouter(prefix="/admin", tags=["admin"])


def _query(
    start: Annotated[datetime | None, Query()] = None,
    end: Annotated[datetime | None, Query()] = None,
    group_by: Annotated[
        str | None, Query(max_length=200, description="user,key,model,provider,intent,day|hour")
    ] = None,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
    api_key_id: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    intent: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query()] = 1000,
) -> UsageQuery:
    return build_query(
        start=start,
        end=end,
        group_by=group_by,
        limit=limit,
        user_id=user_id,
        api_key_id=api_key_id,
        model=model,
        provider=provider,
        intent=intent,
    )


QueryDep = Annotated[UsageQuery, Depends(_query)]


@router.get("/usage", response_model=UsageReport)
async def get_usage(_: AdminDep, query: QueryDep, session: SessionDep) -> UsageReport:
    data = await usage_report(session, query=query)
    return UsageReport(
        start=query.filters.start.isoformat(),
        end=query.filters.end.isoformat(),
        group_by=list(query.group_by),
        data=data,
    )


@router.get("/usage/export")
async def export_usage(_: AdminDep, query: QueryDep, session: SessionDep) -> Response:
    body = await usage_export_csv(session, query=query)
    return Response(
        content=body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="usage.csv"'},
    )


@router.get("/users", response_model=UserList)
async def list_users(
    _: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> UserList:
    users, total = await user_service.list_users(session, limit=limit, offset=offset, email_contains=email)
    return UserList(data=[UserOut.model_validate(u) for u in users], total=total, limit=limit, offset=offset)


@router.patch("/users/{user_id}", response_model=UserOut)
async def patch_user(
    user_id: str, body: UserPatch, admin: AdminDep, accounts: AccountsDep, session: SessionDep
) -> UserOut:
    user = await user_service.update_user(
        session,
        actor=admin,
        user_id=user_id,
        role=body.role,
        tier=body.tier,
        disabled=body.disabled,
        authenticator=accounts.authenticator,
    )
    return UserOut.model_validate(user)
