"""Datasets of test cases: ``/api/datasets`` (issue #24).

Who may call: any signed-in user on the datasets they created, an admin on all (another user's is a
404). Imports send the file as the request body (``POST /api/datasets/{id}/import?format=csv``);
the gateway's body limit (``GATEWAY_MAX_BODY_BYTES``, 4 MiB by default) answers 413 above it, and a
dataset holds at most 10,000 cases (400 ``too_many_cases``); either way nothing is written.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.prompts import clean_body
from gateway.api.responses import OrjsonResponse
from gateway.deps import SessionDep, UserDep
from gateway.evals.datasets_io import MAX_CASES, case, too_many
from gateway.services import datasets

router = APIRouter(prefix="/api/datasets", tags=["datasets"], dependencies=[Depends(clean_body)])

_MEDIA = {"csv": "text/csv", "json": "application/json", "jsonl": "application/x-ndjson"}
Fmt = Literal["csv", "json", "jsonl"]


class DatasetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    kind: Literal["golden", "evaluation"] = "evaluation"
    description: str | None = Field(default=None, max_length=4000)
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=32)
    cases: list[dict[str, Any]] = []


class DatasetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["golden", "evaluation"] | None = None
    description: str | None = Field(default=None, max_length=4000)
    tags: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=32)


class CasesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: list[dict[str, Any]] = Field(min_length=1)
    replace: bool = False


@router.post("", status_code=201)
async def create_dataset(body: DatasetIn, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(
        await datasets.create(session, principal, fields=body.model_dump()), status_code=201
    )


@router.get("")
async def list_datasets(
    principal: UserDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> OrjsonResponse:
    rows = await datasets.list_datasets(session, principal, limit=limit, offset=offset)
    return OrjsonResponse({"object": "list", "data": rows})


@router.get("/{dataset_id}")
async def read_dataset(dataset_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(await datasets.read(session, principal, dataset_id))


@router.patch("/{dataset_id}")
async def update_dataset(
    dataset_id: str, body: DatasetPatch, principal: UserDep, session: SessionDep
) -> OrjsonResponse:
    fields = body.model_dump(exclude_unset=True)
    return OrjsonResponse(await datasets.update(session, principal, dataset_id, fields=fields))


@router.delete("/{dataset_id}", status_code=204)
async def delete_dataset(dataset_id: str, principal: UserDep, session: SessionDep) -> Response:
    await datasets.delete(session, principal, dataset_id)
    return Response(status_code=204)


@router.get("/{dataset_id}/cases")
async def list_cases(
    dataset_id: str,
    principal: UserDep,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> OrjsonResponse:
    return OrjsonResponse(await datasets.cases(session, principal, dataset_id, version=version))


@router.post("/{dataset_id}/cases", status_code=201)
async def add_cases(
    dataset_id: str, body: CasesIn, principal: UserDep, session: SessionDep
) -> OrjsonResponse:
    if len(body.cases) > MAX_CASES:
        raise too_many(len(body.cases))
    items = [case(item, f"cases[{index}]") for index, item in enumerate(body.cases)]
    row = await datasets.add_cases(session, principal, dataset_id, items=items, replace=body.replace)
    return OrjsonResponse(row, status_code=201)


@router.patch("/{dataset_id}/cases/{case_id}")
async def edit_case(
    dataset_id: str, case_id: str, body: dict[str, Any], principal: UserDep, session: SessionDep
) -> OrjsonResponse:
    return OrjsonResponse(await datasets.edit_case(session, principal, dataset_id, case_id, raw=body))


@router.delete("/{dataset_id}/cases/{case_id}")
async def delete_case(
    dataset_id: str, case_id: str, principal: UserDep, session: SessionDep
) -> OrjsonResponse:
    return OrjsonResponse(await datasets.edit_case(session, principal, dataset_id, case_id, raw=None))


@router.post("/{dataset_id}/import", status_code=201)
async def import_cases(
    dataset_id: str,
    request: Request,
    principal: UserDep,
    session: SessionDep,
    format: Fmt = "csv",
    replace: bool = False,
) -> OrjsonResponse:
    body = await request.body()
    row = await datasets.import_file(session, principal, dataset_id, body=body, fmt=format, replace=replace)
    return OrjsonResponse(row, status_code=201)


@router.get("/{dataset_id}/export")
async def export_cases(
    dataset_id: str,
    principal: UserDep,
    session: SessionDep,
    format: Fmt = "jsonl",
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    content = await datasets.export(session, principal, dataset_id, fmt=format, version=version)
    return Response(content=content, media_type=_MEDIA[format])
