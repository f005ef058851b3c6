"""OpenAI-compatible ``POST /v1/embeddings`` (docs/embeddings.md): a thin router over
``services/embeddings.py``."""

from __future__ import annotations

import functools

import orjson
from fastapi import APIRouter, Request, Response

from gateway.api.openai import cache_policy, request_timeout
from gateway.deps import AppStateDep, PrincipalDep
from gateway.errors import GatewayError, ServiceUnavailable
from gateway.schemas.embeddings import parse_embedding_request
from gateway.services.embeddings import MAX_INPUTS

router = APIRouter(prefix="/v1", tags=["openai"])

_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "input"],
                    "properties": {
                        "model": {"type": "string"},
                        "input": {
                            "description": "a string, strings, token ids or token id arrays",
                            "anyOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}},
                                {"type": "array", "items": {"type": "integer"}},
                                {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
                            ],
                        },
                        "encoding_format": {"type": "string", "enum": ["float", "base64"]},
                        "dimensions": {"type": "integer", "minimum": 1},
                        "user": {"type": "string"},
                    },
                }
            }
        },
    }
}


@router.post("/embeddings", openapi_extra=_SCHEMA, response_model=None)
async def create_embeddings(request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    service = state.embeddings
    if service is None:
        raise ServiceUnavailable("embeddings are not served by this instance")
    settings = state.settings
    body = await request.body()
    parse = functools.partial(
        parse_embedding_request, body, max_chars=settings.max_total_chars, max_inputs=MAX_INPUTS
    )
    try:
        result = await service.embed(
            parse,
            principal=principal,
            request_id=request.state.request_id,
            client_request_id=getattr(request.state, "client_request_id", None),
            cache_policy=cache_policy(request.headers.get("cache-control"), None),
            timeout_s=request_timeout(request.headers.get("x-prism-timeout")),
        )
    except GatewayError as exc:
        request.state.metric_model = service.label(exc.headers.get("x-prism-model"))
        raise
    request.state.metric_model = service.label(result.model)
    return Response(
        content=orjson.dumps(result.body()),
        media_type="application/json",
        headers=result.headers,
    )
