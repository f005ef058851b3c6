"""Retrieval collections (docs/retrieval.md): a thin router over ``gateway/retrieval/service.py``.

Admin only: ``POST /api/collections``, ``DELETE /api/collections/{id}``,
``POST /api/collections/{id}/documents`` (the body is the document, its ``Content-Type`` one of
text/plain, text/markdown, application/pdf, ``?filename=``; or a multipart form with a ``file``
field), ``DELETE /api/collections/{id}/documents/{doc}``. Readers (see the service):
``GET /api/collections``, ``GET /api/collections/{id}``, ``GET /api/collections/{id}/documents``,
``POST /api/collections/{id}/search``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.deps import AdminDep, AppStateDep, PrincipalDep
from gateway.errors import InvalidRequest, ServiceUnavailable
from gateway.retrieval.extract import media_type
from gateway.retrieval.service import RetrievalService

router = APIRouter(prefix="/api/collections", tags=["retrieval"])

CollectionId = Annotated[int, Path(ge=1, le=2**62)]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _service(state: Any) -> RetrievalService:
    service: RetrievalService | None = getattr(state, "retrieval", None)
    if service is None:
        raise ServiceUnavailable("Retrieval is not served by this instance")
    return service


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=2000)
    embedding_model: str | None = Field(default=None, min_length=1, max_length=128)
    chunk_chars: int = Field(default=1000, ge=200, le=8000)
    chunk_overlap: int = Field(default=150, ge=0, le=2000)
    readers: list[str] | None = Field(default=None, max_length=1000)
    """User ids that may search; null: every signed-in user. Admins always may."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("name: letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("query contains NUL")
        if not value.strip():
            raise ValueError("query is blank")
        return value


@router.post("", status_code=201)
async def create_collection(
    body: CollectionIn, request: Request, state: AppStateDep, admin: AdminDep
) -> dict[str, Any]:
    row = await _service(state).create_collection(
        principal=admin,
        request_id=request.state.request_id,
        name=body.name,
        description=body.description,
        embedding_model=body.embedding_model,
        chunk_chars=body.chunk_chars,
        chunk_overlap=body.chunk_overlap,
        readers=body.readers,
    )
    return row.public()


@router.get("")
async def list_collections(state: AppStateDep, principal: PrincipalDep) -> dict[str, Any]:
    rows = await _service(state).list_collections(principal)
    return {"object": "list", "data": [r.public() for r in rows]}


@router.get("/{collection_id}")
async def get_collection(
    collection_id: CollectionId, state: AppStateDep, principal: PrincipalDep
) -> dict[str, Any]:
    return (await _service(state).collection(principal, collection_id)).public()


@router.delete("/{collection_id}", status_code=204)
async def delete_collection(collection_id: CollectionId, state: AppStateDep, admin: AdminDep) -> Response:
    await _service(state).delete_collection(admin, collection_id)
    return Response(status_code=204)


@router.post("/{collection_id}/documents", status_code=201)
async def upload_document(
    collection_id: CollectionId,
    request: Request,
    state: AppStateDep,
    admin: AdminDep,
    filename: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    service = _service(state)
    declared = request.headers.get("content-type")
    if (declared or "").lower().startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidRequest("The form needs a 'file' field holding the document", param="file")
        data = await upload.read()
        name = filename or upload.filename or "document"
        declared = upload.content_type
    else:
        data = await request.body()
        name = filename or "document"
    if not data:
        raise InvalidRequest("The document is empty", param="file", code="empty_document")
    if "\x00" in name or "/" in name:
        raise InvalidRequest("filename may not contain '/' or NUL", param="filename")
    kind = media_type(declared, name)
    return await service.ingest(
        principal=admin,
        request_id=request.state.request_id,
        collection_id=collection_id,
        data=data,
        kind=kind,
        filename=name,
    )


@router.get("/{collection_id}/documents")
async def list_documents(
    collection_id: CollectionId, state: AppStateDep, principal: PrincipalDep
) -> dict[str, Any]:
    return {"object": "list", "data": await _service(state).list_documents(principal, collection_id)}


@router.delete("/{collection_id}/documents/{document_id}", status_code=204)
async def delete_document(
    collection_id: CollectionId,
    document_id: Annotated[int, Path(ge=1, le=2**62)],
    state: AppStateDep,
    admin: AdminDep,
) -> Response:
    await _service(state).delete_document(admin, collection_id, document_id)
    return Response(status_code=204)


@router.post("/{collection_id}/search")
async def search(
    collection_id: CollectionId, body: SearchIn, request: Request, state: AppStateDep, principal: PrincipalDep
) -> dict[str, Any]:
    hits = await _service(state).search(
        principal=principal,
        request_id=request.state.request_id,
        collection_id=collection_id,
        query=body.query,
        k=body.k,
        mode=body.mode,
    )
    return {"object": "list", "collection_id": collection_id, "mode": body.mode, "data": hits}
