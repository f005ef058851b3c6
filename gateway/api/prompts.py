"""The prompt registry: ``/api/prompts`` and ``/api/prompts/{id}/versions`` (issue #24).

Who may call: any signed-in user (JWT or API key) on the prompts they created; an admin on all.
Another user's prompt is a 404, like a missing one. Versions are immutable: there is no update or
delete of a version; a change is a new version, and activation (audited) or rollback picks which
one applications use.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.openai import _body_problem
from gateway.api.responses import OrjsonResponse
from gateway.deps import SessionDep, UserDep
from gateway.errors import InvalidRequest
from gateway.services import prompts


async def clean_body(request: Request) -> None:
    """A JSON body holding what no column can store (a NUL character), nested too deep or with an
    integer beyond 64 bits is a 400 before anything reads it (the same walk as the chat endpoint)."""
    if request.method not in ("POST", "PATCH", "PUT"):
        return
    if "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()
    if not body:
        return
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            "The request body is not valid JSON (or not UTF-8)", code="invalid_json"
        ) from exc
    problem = _body_problem(raw, request.state.app.settings.max_json_depth)
    if problem is not None:
        raise InvalidRequest(problem, code="invalid_text" if "NUL" in problem else "invalid_json")


router = APIRouter(prefix="/api/prompts", tags=["prompts"], dependencies=[Depends(clean_body)])

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class PromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    description: str | None = Field(default=None, max_length=4000)
    messages: str | list[dict[str, Any]] | None = None
    """The first version (activated), optional: a string is one system message."""
    note: str | None = Field(default=None, max_length=4000)


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: str | list[dict[str, Any]]
    note: str | None = Field(default=None, max_length=4000)
    activate: bool = False


Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]


@router.post("", status_code=201)
async def create_prompt(body: PromptIn, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    row = await prompts.create_prompt(
        session,
        principal,
        name=body.name,
        description=body.description,
        messages=body.messages,
        note=body.note,
    )
    return OrjsonResponse(row, status_code=201)


@router.get("")
async def list_prompts(
    principal: UserDep, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> OrjsonResponse:
    rows = await prompts.list_prompts(session, principal, limit=limit, offset=offset)
    return OrjsonResponse({"object": "list", "data": rows})


@router.get("/{prompt_id}")
async def read_prompt(prompt_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(await prompts.read_prompt(session, principal, prompt_id))


@router.post("/{prompt_id}/versions", status_code=201)
async def add_version(
    prompt_id: str, body: VersionIn, principal: UserDep, session: SessionDep
) -> OrjsonResponse:
    row = await prompts.add_version(
        session, principal, prompt_id, messages=body.messages, note=body.note, activate=body.activate
    )
    return OrjsonResponse(row, status_code=201)


@router.get("/{prompt_id}/versions")
async def list_versions(prompt_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(
        {"object": "list", "data": await prompts.list_versions(session, principal, prompt_id)}
    )


@router.get("/{prompt_id}/versions/{version}")
async def read_version(
    prompt_id: str, version: str, principal: UserDep, session: SessionDep
) -> OrjsonResponse:
    row = await prompts.get_version(session, principal, prompt_id, version)
    return OrjsonResponse(prompts.version_dict(row))


@router.post("/{prompt_id}/versions/{version}/activate")
async def activate(prompt_id: str, version: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(await prompts.activate(session, principal, prompt_id, version))


@router.post("/{prompt_id}/rollback")
async def rollback(prompt_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(await prompts.rollback(session, principal, prompt_id))


@router.get("/{prompt_id}/activations")
async def activations(prompt_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(
        {"object": "list", "data": await prompts.activations(session, principal, prompt_id)}
    )


@router.get("/{prompt_id}/diff")
async def diff(
    prompt_id: str,
    principal: UserDep,
    session: SessionDep,
    from_: Annotated[str, Query(alias="from", max_length=40)],
    to: Annotated[str, Query(max_length=40)],
) -> OrjsonResponse:
    return OrjsonResponse(await prompts.diff(session, principal, prompt_id, from_, to))
