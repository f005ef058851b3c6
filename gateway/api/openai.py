"""OpenAI-compatible endpoints: chat completions (JSON and SSE) and the model list."""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from gateway.agent.state import ChatInput, Reply
from gateway.api.responses import OrjsonResponse
from gateway.deps import AppStateDep, PrincipalDep, get_app_state, get_principal
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from gateway.experiments.sticky import end_user_key
from gateway.lifespan import AppState
from gateway.providers.tokens import count_messages
from gateway.runtime import RuntimeSnapshot
from gateway.schemas import anthropic as anthropic_models
from gateway.schemas.openai import ChatCompletionRequest
from gateway.security.principal import Principal
from gateway.services import applications, conversations
from gateway.services.accounting import ConversationSink
from gateway.services.completion import CachePolicy, chat_input
from gateway.usage.record import UsageTags

router = APIRouter(prefix="/v1", tags=["openai"])

_UNION_BRANCH = re.compile(r"^(str|int|float|bool|.*\[.*\])$")

_CHAT_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
    }
}


def _body_problem(value: Any, limit: int) -> str | None:
    """Why a parsed body is refused before validation: nested deeper than ``limit``, an integer
    outside 64 bits (which no JSON encoder downstream — cache keys, provider SDKs — could write
    back), or a NUL character in any key or string (the database cannot store it; orjson already
    refuses unpaired surrogates as invalid JSON). One walk for all three."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return f"The request body is nested deeper than {limit} levels"
        if isinstance(item, str):
            if "\x00" in item:
                return "The request body contains a NUL character in a string"
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return "The request body contains a NUL character in a key"
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif type(item) is int and not -(2**63) <= item < 2**64:
            return "The request body holds an integer out of the 64-bit range"
    return None


def decode_object(body: bytes, max_depth: int) -> dict[str, Any]:
    """A request body as a JSON object, for every API family: not JSON, not an object, too deep or
    holding NUL / lone surrogates is an ``InvalidRequest`` (``invalid_json`` / ``invalid_text``)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            "The request body is not valid JSON (or not UTF-8)", code="invalid_json"
        ) from exc
    if not isinstance(raw, dict):
        raise InvalidRequest("The request body must be a JSON object", code="invalid_json")
    problem = _body_problem(raw, max_depth)
    if problem is not None:
        raise InvalidRequest(problem, code="invalid_text" if "NUL" in problem else "invalid_json")
    return raw


def parse_chat_request(
    body: bytes, *, max_depth: int, max_messages: int, max_chars: int
) -> tuple[ChatCompletionRequest, dict[str, Any]]:
    """Bytes → validated request, or an ``InvalidRequest`` naming the offending field."""
    raw = decode_object(body, max_depth)
    stop = raw.get("stop")
    if isinstance(stop, list) and len(stop) > 4:
        raise InvalidRequest(
            f"'stop' takes a string or at most 4 strings, got {len(stop)}", param="stop", code="invalid_value"
        )
    try:
        request = ChatCompletionRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        # pydantic names the union branch it tried (``stop.str``, ``tool_choice.dict[str,any]``): not a field
        param = ".".join(str(part) for part in first["loc"] if not _UNION_BRANCH.match(str(part))) or None
        raise InvalidRequest(
            f"Invalid value for {param or 'body'}: {first['msg']}", param=param, code="invalid_value"
        ) from exc
    if len(request.messages) > max_messages:
        raise InvalidRequest(f"At most {max_messages} messages are allowed", param="messages")
    total = sum(_content_chars(message.get("content")) for message in raw["messages"])
    if total > max_chars:
        raise InvalidRequest(f"The messages exceed {max_chars} characters", param="messages")
    return request, raw


def _content_chars(content: Any) -> int:
    """Characters of a message's content: the string, or the text of its parts."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(part["text"])
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def request_timeout(value: str | None) -> float | None:
    """``X-Prism-Timeout: <seconds>``: the request's total deadline (capped by the config)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise InvalidRequest(
            "X-Prism-Timeout must be a positive number of seconds",
            param="X-Prism-Timeout",
            code="invalid_timeout",
        )
    return seconds


def cache_policy(cache_control: str | None, opt_in: str | None) -> CachePolicy:
    """``Cache-Control: no-cache`` skips the lookup, ``no-store`` skips writing; ``X-Prism-Cache: on``
    opts a non-deterministic request in."""
    directives = {part.strip().lower() for part in (cache_control or "").split(",")}
    return CachePolicy(
        read="no-cache" not in directives,
        write="no-store" not in directives,
        opt_in=(opt_in or "").strip().lower() in {"on", "1", "true", "force"},
    )


def body_field(body: bytes, name: str) -> Any:
    """A top-level string or boolean of a body that may not be valid JSON (for the refusal's record)."""
    try:
        value = orjson.loads(body).get(name)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str | bool) and "\x00" not in str(value) else None


async def run_flow(
    request: Request,
    state: AppState,
    *,
    chat: ChatInput,
    principal: Principal,
    request_id: str,
    sticky: dict[str, str | None],
    snapshot: RuntimeSnapshot,
    conversation: ConversationSink | None = None,
    tags: UsageTags | None = None,
) -> Reply:
    """One request through the flow, for every API family (chat, ``/v1/messages``, ``/v1/responses``):
    the request's cache and timeout headers applied, and the request's metric labelled with the model
    that answered, or a refusal with the model it was about (a bounded label, not "none": #26)."""
    try:
        result = await state.completions.run(
            chat=chat,
            principal=principal,
            request_id=request_id,
            client_request_id=getattr(request.state, "client_request_id", None),
            sticky=sticky,
            cache_policy=cache_policy(
                request.headers.get("cache-control"), request.headers.get("x-prism-cache")
            ),
            timeout_s=request_timeout(request.headers.get("x-prism-timeout")),
            snapshot=snapshot,
            conversation=conversation,
            tags=tags,
        )
    except GatewayError as exc:
        request.state.metric_model = snapshot.model_label(exc.headers.get("x-prism-model"))
        raise
    request.state.metric_model = snapshot.model_label(result.model)
    return result


class ClosingStreamingResponse(StreamingResponse):
    """An SSE response that stops when its client leaves and always closes its body generator.

    Starlette's ``StreamingResponse`` runs each stream in an anyio task group with a second task
    listening for the disconnect; this does the same with one plain asyncio task and no task group
    (a measurable share of a short stream's CPU). When the client leaves, the watcher cancels the
    stream where it waits (upstream read or send) and the cancellation is absorbed here, as the task
    group did. The generator is closed on every exit: if it was suspended at a ``yield`` when the
    stream ended it would otherwise never be resumed, and its ``finally`` (the usage record) would
    only run when the garbage collector finalises it — or never, if the process stops first."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone or task.uncancel() > 0:
                raise  # cancelled from outside (shutdown, a timeout): not ours to absorb
        finally:
            if not watcher.done():
                watcher.cancel()
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


async def _prepare(
    request: Request, state: AppState, principal: Principal, snapshot: RuntimeSnapshot
) -> tuple[ChatInput, str, str | None, dict[str, str | None]]:
    """Parse and validate the body; the request id, conversation id and sticky keys for routing."""
    settings = state.settings
    chat_request, raw = parse_chat_request(
        await request.body(),
        max_depth=settings.max_json_depth,
        max_messages=settings.max_messages,
        max_chars=settings.max_total_chars,
    )
    chat = chat_input(chat_request, raw)
    request_id: str = request.state.request_id
    conversation = _conversation_id(request, chat)
    # The end user a service key speaks for (a configured header or metadata field, else OpenAI's
    # ``user``) before the key's owner, so one B2B key fronting many end users still splits them (#26).
    end_user, sticky_source = end_user_key(
        snapshot.config.routing.sticky_user_field,
        headers=request.headers,
        metadata=chat.metadata,
        user=chat_request.user,
        principal_user=principal.user_id,
    )
    sticky = {
        "user": end_user,
        "user_source": sticky_source,
        "api_key": principal.api_key_id,
        "conversation": conversation,
        "request": request_id,
    }
    return chat, request_id, conversation, sticky


_CONVERSATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _conversation_id(request: Request, chat: ChatInput) -> str | None:
    """``X-Prism-Conversation-Id`` or ``metadata.conversation_id``: an id the conversation store can
    hold (``[A-Za-z0-9._:-]``, at most 64 characters), else a 400 naming where it came from."""
    header = request.headers.get("x-prism-conversation-id")
    value, param = (
        (header, "X-Prism-Conversation-Id")
        if header
        else (
            chat.metadata.get("conversation_id"),
            "metadata.conversation_id",
        )
    )
    if value is None:
        return None
    if not isinstance(value, str) or not _CONVERSATION_ID.match(value):
        raise InvalidRequest(
            f"{param} must be 1 to 64 characters of letters, digits and . _ : -",
            param=param,
            code="invalid_conversation_id",
        )
    return value


@router.post("/chat/completions", openapi_extra=_CHAT_SCHEMA, response_model=None)
async def create_chat_completion(request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    return await chat_completion(request, state, principal)


async def serve_chat_completion(request: Request) -> Response:
    """``POST /v1/chat/completions`` on the hot path (``gateway/api/hot_path.py``): the route's own
    dependencies, called directly."""
    state = await get_app_state(request)
    return await chat_completion(request, state, await get_principal(request, state))


def hot_routes() -> dict[str, tuple[Any, Callable[[Request], Awaitable[Response]]]]:
    """Paths the hot path serves, with the FastAPI route objects that declare them."""
    declared = {getattr(route, "path", None): route for route in router.routes}
    path = router.prefix + "/chat/completions"
    return {path: (declared[path], serve_chat_completion)}


async def chat_completion(request: Request, state: AppState, principal: Principal) -> Response:
    snapshot = state.holder.current  # the request's config, read once and passed down
    chat, request_id, conversation, sticky = await _prepare(request, state, principal, snapshot)
    tags = None
    if chat.model.startswith(applications.APP_PREFIX):  # an application (issue #24)
        sessionmaker = state.accounts.sessionmaker if state.accounts is not None else None
        tags = await applications.prepare_chat(sessionmaker, principal, chat, sticky=sticky)
    # Conversation store (issue #3): history is read in a short session before the call; the
    # exchange is written by the flow's settle step, in its own unit of work after the answer (no
    # session held while streaming).
    accounts = state.accounts if conversation and principal.user_id else None
    store: ConversationSink | None = None
    if accounts is not None and conversation:
        async with accounts.sessionmaker() as session:
            history = await conversations.load_history(
                conversation_id=conversation,
                principal=principal,
                session=session,
                max_messages=state.settings.conversation_max_messages,
            )
        new_messages = list(chat.messages)
        if history:
            merged = conversations.merge_history(history, chat.messages)
            window = snapshot.router.context_window_for(chat.model)
            limit = chat.params.get("max_completion_tokens") or chat.params.get("max_tokens") or 0
            if window is not None:
                merged = conversations.trim_history(
                    merged, context_window=window, max_tokens=int(limit), count_tokens=count_messages
                )
            chat.messages = merged
            chat.prompt_tokens = count_messages(merged)
        store = functools.partial(
            conversations.append_exchange,
            sessionmaker=accounts.sessionmaker,
            conversation_id=conversation,
            principal=principal,
            new_messages=new_messages,
            request_id=request_id,
        )
    result = await run_flow(
        request,
        state,
        chat=chat,
        principal=principal,
        request_id=request_id,
        sticky=sticky,
        snapshot=snapshot,
        conversation=store,
        tags=tags,
    )
    if result.stream is not None:
        headers = {**result.headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
        return ClosingStreamingResponse(result.stream, media_type="text/event-stream", headers=headers)
    return Response(content=orjson.dumps(result.body), media_type="application/json", headers=result.headers)


@router.get("/models")
async def list_models(request: Request, state: AppStateDep, principal: PrincipalDep) -> OrjsonResponse:
    snapshot = state.holder.current
    created = int(time.time())
    names = [name for name in snapshot.router.public_names() if principal.may_use(name)]
    if request.headers.get("anthropic-version"):  # the anthropic SDK's client.models.list(): chat models
        return OrjsonResponse(anthropic_models.model_page(names, created))
    if state.embeddings is not None:  # embedding models too (docs/embeddings.md)
        names += state.embeddings.public_names(principal)
    data = [{"id": name, "object": "model", "created": created, "owned_by": "prism"} for name in names]
    return OrjsonResponse({"object": "list", "data": data})


@router.get("/models/{model_id}")
async def get_model(
    model_id: str, request: Request, state: AppStateDep, principal: PrincipalDep
) -> OrjsonResponse:
    snapshot = state.holder.current
    embedding = state.embeddings is not None and model_id in state.embeddings.public_names(principal)
    if not embedding and (model_id not in snapshot.router.public_names() or not principal.may_use(model_id)):
        raise ModelNotFound(f"The model {model_id!r} does not exist", param="model")
    if request.headers.get("anthropic-version"):
        return OrjsonResponse(anthropic_models.model_info(model_id, int(time.time())))
    return OrjsonResponse(
        {"id": model_id, "object": "model", "created": int(time.time()), "owned_by": "prism"}
    )


@router.post("/route/explain", openapi_extra=_CHAT_SCHEMA, response_model=None)
async def explain_route(request: Request, state: AppStateDep, principal: PrincipalDep) -> OrjsonResponse:
    """How a chat request would be routed (intent, confidence, tier, model, fallbacks, arm) — no model is
    called, no quota is spent. Takes the same body as ``/v1/chat/completions``."""
    snapshot = state.holder.current
    chat, request_id, _, sticky = await _prepare(request, state, principal, snapshot)
    return OrjsonResponse(
        await state.completions.explain(
            chat=chat, principal=principal, request_id=request_id, sticky=sticky, snapshot=snapshot
        )
    )
