"""Anthropic Messages API: ``POST /v1/messages`` (JSON and SSE) and ``/v1/messages/count_tokens``.

An adapter at the edge: the request is translated to the chat flow's ``ChatInput``
(``services/messages_codec.py``) and runs through the same ``CompletionService.run`` as
``/v1/chat/completions`` — auth (``x-api-key`` or ``Authorization: Bearer``), quotas,
``allowed_models``, guards, fallbacks, cache, one usage record, metrics and spans — then the answer
is rendered as an Anthropic ``message`` or event stream. Every error, from the body parser to an
upstream failure, is rendered in Anthropic's envelope with its status. Both routes are served on
the hot path (``api/hot_path.py``), which lets the endpoint check its own body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError

from gateway.agent.state import ChatInput
from gateway.api.openai import ClosingStreamingResponse, body_field, decode_object, run_flow
from gateway.deps import get_app_state, get_principal
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from gateway.experiments.sticky import end_user_key
from gateway.lifespan import AppState
from gateway.providers.anthropic_wire import NATIVE_ANSWERS
from gateway.providers.tokens import count_messages, count_text
from gateway.schemas.anthropic import CountTokensRequest, MessagesRequest, error_body
from gateway.security.principal import Principal
from gateway.services.messages_codec import chat_input, message_from_completion, openai_messages
from gateway.services.messages_stream import MessageStream, anthropic_events

router = APIRouter(prefix="/v1", tags=["anthropic"])

_Model = TypeVar("_Model", bound=BaseModel)

_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MessagesRequest"}}},
    }
}


def anthropic_error_response(exc: GatewayError, request_id: str | None) -> Response:
    """A gateway error in Anthropic's envelope (same status and headers as OpenAI's rendering)."""
    return Response(
        content=orjson.dumps(error_body(exc.status_code, exc.message, request_id=request_id)),
        status_code=exc.status_code,
        media_type="application/json",
        headers=exc.headers,
    )


def _parse(body: bytes, model: type[_Model], *, max_depth: int) -> tuple[_Model, dict[str, Any]]:
    raw = decode_object(body, max_depth)
    try:
        return model.model_validate(raw), raw
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['msg']}", param=where, code="invalid_value") from exc


async def _guarded(request: Request, handler: Callable[[Request, AppState], Awaitable[Response]]) -> Response:
    """Run an endpoint; any gateway error (auth included) leaves in Anthropic's envelope."""
    request_id: str | None = getattr(request.state, "request_id", None)
    try:
        state = await get_app_state(request)
        return await handler(request, state)
    except GatewayError as exc:
        return anthropic_error_response(exc, request_id)


async def serve_messages(request: Request) -> Response:
    return await _guarded(request, _messages)


async def serve_count_tokens(request: Request) -> Response:
    return await _guarded(request, _count_tokens)


@router.post("/messages", openapi_extra=_SCHEMA, response_model=None)
async def create_message(request: Request) -> Response:
    return await serve_messages(request)


@router.post("/messages/count_tokens", response_model=None)
async def count_tokens(request: Request) -> Response:
    return await serve_count_tokens(request)


def hot_routes() -> dict[str, tuple[Any, Callable[[Request], Awaitable[Response]]]]:
    """Both routes skip FastAPI's stack: the endpoint checks its own body (NUL bytes, depth) so that
    the refusal is Anthropic-shaped, and the chat route's overhead savings apply."""
    declared = {getattr(route, "path", None): route for route in router.routes}
    return {
        "/v1/messages": (declared["/v1/messages"], serve_messages),
        "/v1/messages/count_tokens": (declared["/v1/messages/count_tokens"], serve_count_tokens),
    }


async def _messages(request: Request, state: AppState) -> Response:
    principal = await get_principal(request, state)
    body = await request.body()
    try:
        chat, parsed = _chat_input(request, state, body)
    except InvalidRequest as exc:  # an authenticated caller's refused body is in the ledger too
        state.completions.record_refusal(
            principal=principal,
            request_id=request.state.request_id,
            error=exc,
            model=body_field(body, "model"),
            streamed=body_field(body, "stream") is True,
            client_request_id=getattr(request.state, "client_request_id", None),
        )
        raise
    return await _run(request, state, principal, chat, parsed)


def _chat_input(request: Request, state: AppState, body: bytes) -> tuple[ChatInput, MessagesRequest]:
    settings = state.settings
    parsed, raw = _parse(body, MessagesRequest, max_depth=settings.max_json_depth)
    if len(parsed.messages) > settings.max_messages:
        raise InvalidRequest(f"At most {settings.max_messages} messages are allowed", param="messages")
    chat = chat_input(
        parsed,
        raw,
        beta=request.headers.get("anthropic-beta"),
        version=request.headers.get("anthropic-version"),
    )
    text_chars = sum(
        len(part) if isinstance(part, str) else len(str(part.get("text", "")))
        for message in chat.messages
        for part in (
            message["content"] if isinstance(message.get("content"), list) else [message.get("content") or ""]
        )
    )
    if text_chars > settings.max_total_chars:
        raise InvalidRequest(f"The messages exceed {settings.max_total_chars} characters", param="messages")
    return chat, parsed


async def _run(
    request: Request, state: AppState, principal: Principal, chat: ChatInput, parsed: MessagesRequest
) -> Response:
    snapshot = state.holder.current
    request_id: str = request.state.request_id
    end_user, sticky_source = end_user_key(
        snapshot.config.routing.sticky_user_field,
        headers=request.headers,
        metadata={},
        user=parsed.metadata.user_id if parsed.metadata else None,
        principal_user=principal.user_id,
    )
    sticky = {
        "user": end_user,
        "user_source": sticky_source,
        "api_key": principal.api_key_id,
        "conversation": None,
        "request": request_id,
    }
    # An Anthropic upstream leaves its native answer here. Not reset: a stream's relay (and so the
    # upstream's last event) runs after this returns, in the same task; each request has its own.
    answers: dict[str, dict[str, Any]] = {}
    NATIVE_ANSWERS.set(answers)
    result = await run_flow(
        request,
        state,
        chat=chat,
        principal=principal,
        request_id=request_id,
        sticky=sticky,
        snapshot=snapshot,
    )
    headers = {**result.headers, "request-id": request_id}
    if result.stream is not None:
        served = result.headers.get("x-prism-model")
        events = MessageStream(
            request_id=request_id, model=served or chat.model, prompt_tokens=chat.prompt_tokens
        )
        stream = anthropic_events(result.stream, stream=events, answers=answers, served=served)
        headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
        return ClosingStreamingResponse(stream, media_type="text/event-stream", headers=headers)
    assert result.body is not None
    native = answers.get(result.model or "")
    body = message_from_completion(result.body, request_id=request_id, native=native)
    return Response(content=orjson.dumps(body), media_type="application/json", headers=headers)


async def _count_tokens(request: Request, state: AppState) -> Response:
    """The prompt's tokens by the gateway's tokenizer (tiktoken ``o200k``; Anthropic's own counts
    differ by a few percent): authenticated, the model must exist and be allowed, no model is
    called, no quota spent and no usage record written (as ``/v1/route/explain``)."""
    principal = await get_principal(request, state)
    parsed, raw = _parse(await request.body(), CountTokensRequest, max_depth=state.settings.max_json_depth)
    snapshot = state.holder.current
    if parsed.model not in snapshot.router.public_names() or not principal.may_use(parsed.model):
        raise ModelNotFound(f"model: {parsed.model}", param="model")
    messages = openai_messages(raw)  # validated as a count request: the shape it translates
    tokens = count_messages(messages)
    for tool in raw.get("tools") or ():
        tokens += count_text(orjson.dumps(tool).decode())
    return Response(content=orjson.dumps({"input_tokens": tokens}), media_type="application/json")
