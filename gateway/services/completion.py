"""The chat completion use case: glue between the router and the request flow.

``CompletionService.run`` takes the request's config snapshot (once), builds the request's books,
admission and delivery (``accounting.py``, ``admission.py``, ``delivery.py``), runs the flow of
``gateway/agent/graph.py`` — admit → decide → call → deliver → settle — and hands back its reply
or raises its error. ``explain`` runs the flow's decide steps only. What the flow does not see is
handled here: a request cancelled mid-flow (the client left) is settled as incomplete, and the
admission is always closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from gateway.agent.flow import Runner
from gateway.agent.graph import DECIDE, build_runner, build_tool_runner
from gateway.agent.guard import GuardService
from gateway.agent.shadow import ShadowDispatcher
from gateway.agent.state import (
    ChatInput,
    IntentService,
    PipelineContext,
    PipelineState,
    Reply,
    RequestTrace,
    ToolAuditSink,
    ToolLoopBooks,
)
from gateway.cache import QuotaLimiter
from gateway.cache.service import PipelineCache
from gateway.errors import GatewayError
from gateway.providers.tokens import count_messages
from gateway.runtime import ConfigHolder, RuntimeSnapshot
from gateway.schemas.openai import GATEWAY_FIELDS, SAMPLING_FIELDS, ChatCompletionRequest
from gateway.security.principal import Principal
from gateway.services import tool_requests
from gateway.services.accounting import ConversationSink, Ledger, RequestBooks, UsageSink
from gateway.services.admission import Admission, CachePolicy, cache_tenant
from gateway.services.delivery import Delivery, route_header, sse
from gateway.tools.registry import ToolRegistry
from gateway.usage.record import UsageRecord, UsageStatus, UsageTags

__all__ = [
    "CachePolicy",
    "CompletionResult",
    "CompletionService",
    "CompletionServices",
    "cache_tenant",
    "chat_input",
    "sse",
]

CompletionResult = Reply


@dataclass(slots=True)
class CompletionServices:
    holder: ConfigHolder
    graph: Runner
    guard: GuardService
    usage: UsageSink | None = None
    shadow: ShadowDispatcher | None = None
    classifier: IntentService | None = None
    response_cache: PipelineCache | None = None
    quotas: QuotaLimiter | None = None
    sleep: Callable[[float], Any] = asyncio.sleep
    extra_headers: dict[str, str] = field(default_factory=dict)
    decide: Runner | None = None
    """The decide steps of the flow (``graph.DECIDE``), for ``explain``; built from the table when unset."""
    tools: ToolRegistry | None = None
    """Server-side tools; ``None``: the tool loop is off (every request takes ``graph``)."""
    tool_graph: Runner | None = None
    """The flow for requests with server tools: the same table on LangGraph's Pregel runtime."""
    tool_audit: ToolAuditSink | None = None
    """Where the tool loop's audit rows go (the ``tool_calls`` table)."""


def chat_input(request: ChatCompletionRequest, raw: Mapping[str, Any]) -> ChatInput:
    """The validated request as dicts; unknown fields ride along in ``params['extra']`` (and
    ``metadata`` too with ``store: true``)."""
    messages = [dict(message) for message in raw["messages"]]
    params = {key: raw[key] for key in SAMPLING_FIELDS if raw.get(key) is not None}
    extra = {
        key: value for key, value in raw.items() if key not in GATEWAY_FIELDS and key not in SAMPLING_FIELDS
    }
    if raw.get("store") is True and raw.get("metadata"):
        extra["metadata"] = raw["metadata"]  # stored completions keep their tags (docs/api.md)
    options = raw.get("stream_options")
    if isinstance(options, dict) and set(options) - {"include_usage"}:
        params["stream_options"] = options  # the client's other stream options reach the upstream
    if extra:
        params["extra"] = extra
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return ChatInput(
        model=request.model,
        messages=messages,
        params=params,
        stream=request.stream,
        include_usage=include_usage,
        metadata=dict(request.metadata or {}),
        prompt_tokens=count_messages(messages),
    )


class CompletionService:
    def __init__(self, services: CompletionServices) -> None:
        self.s = services
        self._decide: Runner = services.decide or build_runner("direct", DECIDE)
        self._ledger = Ledger(
            experiments=services.holder.experiments,
            usage=services.usage,
            quotas=services.quotas,
            response_cache=services.response_cache,
            shadow=services.shadow,
            tool_audit=services.tool_audit,
        )
        self._tool_graph: Runner = services.tool_graph or (
            build_tool_runner() if services.tools is not None else services.graph
        )

    async def run(
        self,
        *,
        chat: ChatInput,
        principal: Principal,
        request_id: str,
        sticky: dict[str, str | None],
        cache_policy: CachePolicy | None = None,
        timeout_s: float | None = None,
        client_request_id: str | None = None,
        snapshot: RuntimeSnapshot | None = None,
        conversation: ConversationSink | None = None,
        tags: UsageTags | None = None,
    ) -> Reply:
        """``request_id`` is the server's (it keys the usage record and the quota reservation);
        ``client_request_id`` the client's ``X-Request-ID``, kept for correlation only.
        ``timeout_s``: the client's ``X-Prism-Timeout`` (capped by ``retry.max_deadline_s``).
        ``snapshot``: the config the request was read with (the router's); the current one when unset.
        ``conversation``: stores the exchange once the answer is complete (the conversation store).
        ``tags``: the application, prompt version and traffic kind the usage record names (issue #24)."""
        snapshot = snapshot or self.s.holder.current
        trace = RequestTrace(
            request_id=request_id,
            started_at=time.perf_counter(),
            deadline=asyncio.get_running_loop().time() + snapshot.config.deadline_for(chat.model, timeout_s),
        )
        record = UsageRecord(
            request_id=request_id,
            client_request_id=client_request_id,
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            tier=principal.tier,
            model_requested=chat.model,
            streamed=chat.stream,
            conversation_id=sticky.get("conversation"),
        )
        if tags is not None:
            record.application = tags.application
            record.prompt_version_id = tags.prompt_version_id
            record.traffic = tags.traffic
            record.app_arm = tags.app_arm
            if tags.shadow is not None and self.s.shadow is not None:  # an application's shadow version
                pair = tags.shadow.plan(self, self.s.shadow, request_id=request_id, streamed=chat.stream)
                if pair is not None:
                    trace.shadow_pairs.append(pair)
        books = RequestBooks(
            self._ledger,
            chat=chat,
            principal=principal,
            record=record,
            trace=trace,
            snapshot=snapshot,
            conversation=conversation,
        )
        policy = cache_policy or CachePolicy()
        graph = self.s.graph
        server_tools: list[str] = []
        named = False
        registry = self.s.tools
        if registry is not None and tool_requests.wants_tools(chat, snapshot):
            try:
                server_tools, named = tool_requests.offer(chat, principal, snapshot, registry)
            except GatewayError as exc:
                books.label_error(exc, None)
                await books.close(error=exc)
                raise
            if server_tools:  # tool results change between calls: never cached
                policy, graph = CachePolicy(read=False, write=False), self._tool_graph
                trace.tools = ToolLoopBooks()
        admission = Admission(books, quotas=self.s.quotas, cache=self.s.response_cache, policy=policy)
        context = self._context(snapshot, principal, trace, sticky)
        context.admission = admission
        context.books = books
        context.delivery = Delivery(books, sticky_source=sticky.get("user_source"), cache_lookup=policy.read)
        state: PipelineState = {
            "request": chat,
            "needs_intent": self.s.classifier is not None and snapshot.router.needs_intent(chat.model),
            "max_attempts": snapshot.config.retry.max_attempts,
        }
        regeneration = snapshot.config.tools.regenerate
        if regeneration.enabled and (regeneration.streams or not chat.stream):
            state["regenerate"] = True
        if not server_tools:
            return await self._invoke(graph, state, context, books, admission)
        state["server_tools"] = server_tools
        state["tools_from_route"] = not named
        context.tools = registry

        async def run() -> Reply:
            reply = await self._invoke(graph, state, context, books, admission)
            return tool_requests.annotate(reply, trace)

        if not chat.stream:
            return await run()
        chat.stream = False  # rounds call the model without streaming; the client still gets SSE
        return await tool_requests.streamed(
            run,
            keepalive_s=snapshot.config.tools.loop.keepalive_s,
            include_usage=chat.include_usage,
            trace=trace,
        )

    async def _invoke(
        self,
        graph: Runner,
        state: PipelineState,
        context: PipelineContext,
        books: RequestBooks,
        admission: Admission,
    ) -> Reply:
        try:
            result = cast(PipelineState, await graph.ainvoke(state, context=context))
        except GatewayError as exc:  # raised outside the flow's own error handling: still one record
            books.label_error(exc, None)
            await books.close(error=exc)
            raise
        except asyncio.CancelledError:
            await books.close(status=UsageStatus.INCOMPLETE, http_status=499)
            raise
        finally:
            await admission.close()
        error = result.get("error")
        if error is not None:
            raise error
        reply = result.get("reply")
        if reply is None:
            raise RuntimeError("the request flow ended without a reply")
        return reply

    def record_refusal(
        self,
        *,
        principal: Principal,
        request_id: str,
        error: GatewayError,
        model: str | None = None,
        streamed: bool = False,
        client_request_id: str | None = None,
    ) -> None:
        """One ``rejected`` usage record for a request refused before the flow (its body did not
        validate), so that an authenticated caller's failed requests are in the ledger too."""
        if self.s.usage is None:
            return
        record = UsageRecord(
            request_id=request_id,
            client_request_id=client_request_id,
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            tier=principal.tier,
            model_requested=model[:128] if model else None,
            streamed=streamed,
            status=UsageStatus.REJECTED,
            http_status=error.status_code,
            error_type=error.code,
        )
        self.s.usage.record(record)

    def _context(
        self,
        snapshot: RuntimeSnapshot,
        principal: Principal,
        trace: RequestTrace,
        sticky: dict[str, str | None],
    ) -> PipelineContext:
        return PipelineContext(
            snapshot=snapshot,
            principal=principal,
            trace=trace,
            guard=self.s.guard,
            shadow=self.s.shadow,
            classifier=self.s.classifier,
            sleep=self.s.sleep,
            sticky=sticky,
        )

    async def explain(
        self,
        *,
        chat: ChatInput,
        principal: Principal,
        request_id: str,
        sticky: dict[str, str | None],
        snapshot: RuntimeSnapshot | None = None,
    ) -> dict[str, Any]:
        """The routing decision for a request, without calling the model or spending quota
        (``POST /v1/route/explain``): the flow's own decide steps, escalation and stickiness floor
        included, so the answer is the route the request would take."""
        snapshot = snapshot or self.s.holder.current
        trace = RequestTrace(
            request_id=request_id,
            started_at=time.perf_counter(),
            deadline=asyncio.get_running_loop().time() + snapshot.config.deadline_for(chat.model, None),
        )
        context = self._context(snapshot, principal, trace, sticky)
        context.explain = True
        state: PipelineState = {
            "request": chat,
            "needs_intent": self.s.classifier is not None and snapshot.router.needs_intent(chat.model),
            "max_attempts": snapshot.config.retry.max_attempts,
        }
        result = cast(PipelineState, await self._decide.ainvoke(state, context=context))
        error = result.get("error")
        if error is not None:
            raise error
        decision = result["route"]
        intent = result.get("intent")
        return {
            "model_requested": chat.model,
            "intent": None
            if intent is None
            else {
                "label": intent.label,
                "confidence": round(intent.confidence, 4),
                "complexity": round(intent.complexity, 4),
                "language": getattr(intent, "language", None),
            },
            "tier": decision.tier,
            "model": decision.targets[0],
            "fallbacks": list(decision.targets[1:]),
            "shadows": list(decision.shadows),
            "experiment": decision.experiment,
            "arm": decision.arm,
            "route": route_header(decision, decision.targets[0], sticky.get("user_source")),
            "prompt_tokens": chat.prompt_tokens,
            "policy": decision.policy_summary,
        }
