"""OpenAI Responses API: ``POST /v1/responses`` (JSON and SSE events), ``GET``/``DELETE
/v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``.

An adapter at the edge: the request becomes a chat request (``schemas/responses_api.py``), runs the
same flow as ``/v1/chat/completions`` (auth, allowed models, quotas, guardrails, cache, retries and
fallbacks, one usage record, metrics, span, access log), and its answer is rendered back as a
response object or as the Responses' stream events (``services/responses_stream.py``). Errors keep
OpenAI's envelope, with chat parameter names mapped back to the Responses' own.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
import structlog
from fastapi import APIRouter, Query, Request, Response

from gateway.agent.state import ChatInput
from gateway.api.openai import ClosingStreamingResponse, body_field, decode_object, run_flow
from gateway.deps import AppStateDep, PrincipalDep, SessionDep
from gateway.errors import GatewayError, InvalidRequest, UnsupportedParameter
from gateway.experiments.sticky import end_user_key
from gateway.lifespan import AppState
from gateway.providers.tokens import count_messages
from gateway.schemas.responses_api import REQUEST_SCHEMA, ResponsesRequest, parse_request
from gateway.services import conversations, responses_store
from gateway.services import responses_output as out
from gateway.services.responses_relay import translate
from gateway.services.responses_stream import ResponsesStream

router = APIRouter(prefix="/v1", tags=["openai"])
log = structlog.get_logger("prism.responses")

_PARAMS = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
}
"""Chat parameter names in errors raised by the flow → the Responses parameter the client sent."""


def _chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return 0


def _messages(
    request: ResponsesRequest, history: list[dict[str, Any]], state: AppState, window: int | None
) -> list[dict[str, Any]]:
    """``instructions`` + the previous responses' transcript + this request's input, checked against
    the gateway's limits and, with ``truncation: auto``, trimmed to the model's context window."""
    settings = state.settings
    merged = [*history, *request.messages]
    if request.truncation == "auto" and window is not None:
        limit = int(request.params.get("max_completion_tokens") or 0)
        merged = conversations.trim_history(
            merged, context_window=window, max_tokens=limit, count_tokens=count_messages
        )
    elif len(merged) > settings.conversation_max_messages + len(request.messages):
        merged = merged[-(settings.conversation_max_messages + len(request.messages)) :]
        while len(merged) > len(request.messages) and merged[0].get("role") == "tool":
            merged.pop(0)  # never start with the answer to a call that was cut off
    if request.instructions is not None:
        merged.insert(0, {"role": "system", "content": request.instructions})
    if len(request.messages) > settings.max_messages:
        raise InvalidRequest(f"At most {settings.max_messages} input items are allowed", param="input")
    chars = sum(_chars(m.get("content")) for m in merged)
    if chars > settings.max_total_chars:
        raise InvalidRequest(f"The input exceeds {settings.max_total_chars} characters", param="input")
    return merged


@router.post(
    "/responses",
    response_model=None,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": REQUEST_SCHEMA}}}
    },
)
async def create_response(request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    settings = state.settings
    snapshot = state.holder.current
    body = await request.body()
    try:
        parsed = parse_request(decode_object(body, settings.max_json_depth))
        request_id: str = request.state.request_id
        accounts = state.accounts
        history: list[dict[str, Any]] = []
        chain_id: str | None = None
        if parsed.previous_response_id is not None:
            if accounts is None:
                raise responses_store.not_found(parsed.previous_response_id, "previous_response_id")
            previous = await responses_store.load_previous(
                accounts.sessionmaker, principal=principal, response_id=parsed.previous_response_id
            )
            history, chain_id = previous.history, previous.chain_id
        messages = _messages(parsed, history, state, snapshot.router.context_window_for(parsed.model))
        chat = ChatInput(
            model=parsed.model,
            messages=messages,
            params=parsed.params,
            stream=parsed.stream,
            include_usage=True,
            metadata=parsed.metadata,
            prompt_tokens=count_messages(messages),
        )
    except GatewayError as exc:  # an authenticated caller's refused request is in the ledger too
        state.completions.record_refusal(
            principal=principal,
            request_id=request.state.request_id,
            error=exc,
            model=body_field(body, "model"),
            streamed=body_field(body, "stream") is True,
            client_request_id=getattr(request.state, "client_request_id", None),
        )
        raise
    end_user, sticky_source = end_user_key(
        snapshot.config.routing.sticky_user_field,
        headers=request.headers,
        metadata=parsed.metadata,
        user=parsed.params.get("user"),
        principal_user=principal.user_id,
    )
    sticky = {
        "user": end_user,
        "user_source": sticky_source,
        "api_key": principal.api_key_id,
        "conversation": chain_id or out.response_id(request_id),
        "request": request_id,
    }
    try:
        result = await run_flow(
            request,
            state,
            chat=chat,
            principal=principal,
            request_id=request_id,
            sticky=sticky,
            snapshot=snapshot,
        )
    except GatewayError as exc:
        if exc.param is not None:
            head, dot, rest = exc.param.partition(".")
            exc.param = _PARAMS.get(exc.param) or (
                _PARAMS[head] + dot + rest if head in _PARAMS else exc.param
            )
        raise
    # what a continuation replays, at most ``conversation_max_messages`` turns (as for conversations)
    kept = [*history, *parsed.messages][-settings.conversation_max_messages :]

    async def store(body: dict[str, Any]) -> None:
        """Keep the answer for ``previous_response_id``/``GET``; the client has paid for the answer,
        so a storage failure is logged (``responses_store_failed``), not turned into an error."""
        if not parsed.store or accounts is None or body["status"] == "failed":
            return
        try:
            await responses_store.save(
                accounts.sessionmaker,
                principal=principal,
                body=body,
                input_items=parsed.input_items,
                history=[*kept, *out.history_messages(body["output"])][-settings.conversation_max_messages :],
                chain_id=chain_id,
            )
        except Exception:
            log.warning("responses_store_failed", response_id=body["id"], exc_info=True)

    if result.stream is not None:
        stream = ResponsesStream(
            request=parsed,
            request_id=request_id,
            created_at=int(time.time()),
            model=parsed.model,
            finish=store,
        )
        headers = {**result.headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
        return ClosingStreamingResponse(
            translate(result.stream, stream), media_type="text/event-stream", headers=headers
        )
    assert result.body is not None
    answer = out.from_chat_completion(parsed, request_id=request_id, body=result.body)
    await store(answer)
    return Response(content=orjson.dumps(answer), media_type="application/json", headers=result.headers)


@router.get("/responses/{response_id}")
async def get_response(
    response_id: str, principal: PrincipalDep, session: SessionDep, stream: bool = False
) -> Response:
    if stream:
        raise UnsupportedParameter(
            "Stored responses are returned whole; streaming a stored response (stream=true) is not "
            "supported.",
            param="stream",
        )
    row = await responses_store.get(session, principal=principal, response_id=response_id)
    return Response(content=orjson.dumps(row.body), media_type="application/json")


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, principal: PrincipalDep, session: SessionDep) -> Response:
    await responses_store.delete(session, principal=principal, response_id=response_id)
    body = {"id": response_id, "object": "response", "deleted": True}
    return Response(content=orjson.dumps(body), media_type="application/json")


@router.get("/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Response:
    row = await responses_store.get(session, principal=principal, response_id=response_id)
    items = responses_store.listed_items(row.id, list(row.input_items))
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    body = {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
    return Response(content=orjson.dumps(body), media_type="application/json")
