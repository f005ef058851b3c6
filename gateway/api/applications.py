"""Applications: ``/api/applications`` (manage) and ``POST /v1/apps/{name}/run`` (call) (issue #24).

Managing: any signed-in user on the applications they created, an admin on all (another user's is
a 404). Calling: see ``services/applications.py``; the call runs the same flow as
``/v1/chat/completions`` (quotas, guardrails, routing, retries, one usage record naming the
application and prompt version) and answers a chat completion object.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.agent.state import ChatInput
from gateway.api.openai import run_flow
from gateway.api.prompts import clean_body
from gateway.api.responses import OrjsonResponse
from gateway.deps import AppStateDep, PrincipalDep, SessionDep, UserDep
from gateway.errors import InvalidRequest
from gateway.providers.tokens import count_messages
from gateway.services import applications, evaluations, rollouts

router = APIRouter(prefix="/api/applications", tags=["applications"], dependencies=[Depends(clean_body)])
run_router = APIRouter(prefix="/v1/apps", tags=["applications"], dependencies=[Depends(clean_body)])

APP_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=APP_NAME)
    description: str | None = Field(default=None, max_length=4000)
    model: str = Field(min_length=1, max_length=128)
    prompt: str = Field(min_length=1, max_length=128, description="prompt id or name")
    pinned_version: str | None = Field(default=None, max_length=40)
    options: dict[str, Any] = {}
    shared: bool = False


class ApplicationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=4000)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    prompt: str | None = Field(default=None, min_length=1, max_length=128)
    pinned_version: str | None = Field(default=None, max_length=40)
    options: dict[str, Any] | None = None
    shared: bool | None = None


class RolloutIn(BaseModel):
    """Shapes only; ``services/rollouts.py`` checks the values (and names the field in a 400)."""

    model_config = ConfigDict(extra="forbid")

    arms: list[dict[str, Any]] | None = Field(default=None, max_length=64)
    shadow: dict[str, Any] | None = None
    sticky: str | None = Field(default=None, max_length=16)


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: str = Field(min_length=1, max_length=64)


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Any] = {}
    messages: list[dict[str, Any]] = Field(default=[], max_length=256)
    metadata: dict[str, str] | None = None


@router.post("", status_code=201)
async def create_application(
    body: ApplicationIn, principal: UserDep, session: SessionDep, state: AppStateDep
) -> OrjsonResponse:
    row = await applications.create(session, principal, state.holder.current, fields=body.model_dump())
    return OrjsonResponse(row, status_code=201)


@router.get("")
async def list_applications(
    principal: UserDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> OrjsonResponse:
    rows = await applications.list_apps(session, principal, limit=limit, offset=offset)
    return OrjsonResponse({"object": "list", "data": rows})


@router.get("/{app_id}")
async def read_application(app_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(applications.app_dict(await applications.get(session, principal, app_id)))


@router.get("/{app_id}/quality")
async def application_quality(app_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    """Online (product traffic per prompt version and experiment arm, with feedback) next to offline
    (its evaluation runs' variants)."""
    return OrjsonResponse(await evaluations.quality(session, principal, app_id))


@router.get("/{app_id}/rollout")
async def read_rollout(app_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    """The application's live rollout (split and/or shadow), or ``rollout: null``."""
    return OrjsonResponse(rollouts.view(await applications.get(session, principal, app_id)))


@router.put("/{app_id}/rollout")
async def set_rollout(
    app_id: str, body: RolloutIn, principal: UserDep, session: SessionDep, state: AppStateDep
) -> OrjsonResponse:
    """Start or replace the rollout: weighted arms (weights sum to 100) over this application's prompt
    versions or models, sticky per user or API key, and/or a shadow of a candidate version. Audited."""
    app = await applications.get(session, principal, app_id)
    raw = body.model_dump(exclude_unset=True)
    return OrjsonResponse(await rollouts.set_rollout(session, principal, state.holder.current, app, raw))


@router.post("/{app_id}/rollout/promote")
async def promote_rollout(
    app_id: str, body: PromoteIn, principal: UserDep, session: SessionDep
) -> OrjsonResponse:
    """The arm (or ``shadow``) becomes the application's version and model; the rollout ends. Audited."""
    app = await applications.get(session, principal, app_id)
    return OrjsonResponse(await rollouts.promote(session, principal, app, body.arm))


@router.post("/{app_id}/rollout/rollback")
async def rollback_rollout(app_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    """End the live rollout, or with none live undo the latest promote. Audited."""
    app = await applications.get(session, principal, app_id)
    return OrjsonResponse(await rollouts.rollback(session, principal, app))


@router.get("/{app_id}/rollout/history")
async def rollout_history(app_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    app = await applications.get(session, principal, app_id)
    return OrjsonResponse({"object": "list", "data": await rollouts.history(session, app)})


@router.patch("/{app_id}")
async def update_application(
    app_id: str, body: ApplicationPatch, principal: UserDep, session: SessionDep, state: AppStateDep
) -> OrjsonResponse:
    fields = body.model_dump(exclude_unset=True)
    row = await applications.update(session, principal, state.holder.current, app_id, fields=fields)
    return OrjsonResponse(row)


@router.delete("/{app_id}", status_code=204)
async def delete_application(app_id: str, principal: UserDep, session: SessionDep) -> Response:
    await applications.delete(session, principal, app_id)
    return Response(status_code=204)


@run_router.post("/{name}/run")
async def run_application(
    name: str, body: RunIn, request: Request, state: AppStateDep, principal: PrincipalDep
) -> Response:
    snapshot = state.holder.current
    for index, message in enumerate(body.messages):
        if message.get("role") not in ("user", "assistant", "system", "tool") or "content" not in message:
            raise InvalidRequest(f"messages[{index}] needs a role and content", param=f"messages[{index}]")
    chat = ChatInput(
        model=applications.APP_PREFIX + name,
        messages=[dict(message) for message in body.messages],
        params={},
        stream=False,
        include_usage=False,
        metadata=dict(body.metadata or {}),
        prompt_tokens=count_messages(body.messages),
    )
    if state.accounts is None:
        raise InvalidRequest("Applications need the gateway's database", code="no_database")
    request_id: str = request.state.request_id
    sticky: dict[str, str | None] = {
        "user": principal.user_id,
        "user_source": None,
        "api_key": principal.api_key_id,
        "conversation": None,
        "request": request_id,
    }
    async with state.accounts.sessionmaker() as session:
        resolved = await applications.resolve(session, principal, name, sticky=sticky, chat=chat)
    tags = applications.apply(resolved, chat, body.variables)
    result = await run_flow(
        request,
        state,
        chat=chat,
        principal=principal,
        request_id=request_id,
        sticky=sticky,
        snapshot=snapshot,
        tags=tags,
    )
    headers = {
        **result.headers,
        "x-prism-application": resolved.application.name,
        "x-prism-prompt-version": str(resolved.version.number),
    }
    if resolved.arm is not None:
        headers["x-prism-app-arm"] = resolved.arm["name"]
    return Response(content=orjson.dumps(result.body), media_type="application/json", headers=headers)
