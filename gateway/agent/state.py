"""The flow's state, the per-request context, the streaming handle and the ports nodes call.

``PipelineState`` is what nodes read and return (partial updates). The ``PipelineContext`` carries
the services and the config snapshot the request started with (taken once, a reload mid-request
never mixes two configs); ``RequestTrace`` is the request's mutable log of attempts and timings.
The admission, delivery and accounting steps are done by the completion services
(``gateway/services/``) behind the small ports below, so the flow decides *when* each runs and the
dependency still points one way (services → agent).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from gateway.config.guardrails import GuardPolicy
from gateway.errors import GatewayError
from gateway.guardrails import MaskTable
from gateway.intent import IntentResult
from gateway.providers.base import Completion, Delta, Usage
from gateway.routing.router import RouteDecision
from gateway.security.principal import Principal

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from gateway.agent.guard import GuardService
    from gateway.agent.shadow import ShadowDispatcher
    from gateway.experiments.shadow import ShadowPair
    from gateway.runtime import RuntimeSnapshot
    from gateway.tools.registry import ToolRegistry


@dataclass(slots=True)
class ChatInput:
    """The validated request, as the client's own dicts."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    stream: bool
    include_usage: bool
    metadata: dict[str, str]
    prompt_tokens: int


@dataclass(slots=True)
class Attempt:
    target: str
    outcome: str
    duration_s: float
    error: str | None = None


@dataclass(slots=True)
class RequestTrace:
    request_id: str
    started_at: float
    deadline: float
    attempts: list[Attempt] = field(default_factory=list)
    provider_time_s: float = 0.0
    fallback_from: str | None = None
    guard_header: str | None = None
    cache_key: str | None = None
    guard_fields: dict[str, Any] = field(default_factory=dict)
    shadow_pairs: list[ShadowPair] = field(default_factory=list)
    """Shadow comparisons waiting for this request's answer (completed by the service at finish)."""
    answer: str | None = None
    """The primary's answer text, kept only when a shadow pair needs it."""
    primary_span: SpanContext | None = None
    """The span of the latest provider attempt (tracing on): what shadow spans link to."""
    tools: ToolLoopBooks | None = None
    """The tool loop's tally (rounds, calls, the usage of the model calls before the last one);
    ``None`` for a request without server tools."""


@dataclass(slots=True)
class ToolLoopBooks:
    """What the tool loop spent and did, summed into the usage record at settle."""

    rounds: int = 0
    calls: int = 0
    usage: Usage = field(default_factory=Usage)
    """Tokens of the model calls answered with server tool calls (the last call is the state's)."""
    cost_usd: float = 0.0
    stopped: str | None = None
    """Why the loop ended early: ``max_rounds`` or ``budget`` (``None``: the model answered)."""
    audit: list[dict[str, Any]] = field(default_factory=list)
    """One entry per executed call, written to the ``tool_calls`` audit table at settle."""

    def as_openai(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "tool_calls": self.calls, "stopped": self.stopped}


class ToolAuditSink(Protocol):
    def record(self, rows: list[dict[str, Any]]) -> None: ...


class IntentService(Protocol):
    def classify(self, text: str, *, context: tuple[str, ...] = ()) -> IntentResult: ...


@dataclass(slots=True)
class Reply:
    """What the client gets: headers, and a JSON body or an SSE byte stream."""

    headers: dict[str, str]
    body: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None
    model: str | None = None


class AdmissionPort(Protocol):
    """The quota reservation and the cache's lookup-or-lock of one request."""

    def begin(self) -> None:
        """Send both (they stay in flight while the request is classified, routed and guarded)."""

    async def outcome(self) -> dict[str, Any] | None:
        """The reservation passed (else its 429 is raised) and the cache's answer (a hit) or ``None``."""


class DeliveryPort(Protocol):
    """Frames the answer for the client."""

    def answer(self, state: PipelineState) -> Reply:
        """A JSON body, or the SSE relay of ``state['stream']`` (which settles when it ends)."""

    def cached(self, cached: dict[str, Any]) -> Reply:
        """A stored answer, in the shape the client asked for (JSON or SSE)."""

    def watched(self, handle: StreamHandle) -> AsyncIterator[Delta]:
        """``handle``'s deltas, first one included, under the relay's idle and drain watchdog."""


class BooksPort(Protocol):
    """Closes the request's books exactly once: usage record, metrics, quota settlement, cache
    write, conversation store, shadow dispatch."""

    async def settle(self, state: PipelineState) -> None: ...


@dataclass(slots=True)
class PipelineContext:
    snapshot: RuntimeSnapshot
    principal: Principal
    trace: RequestTrace
    guard: GuardService
    shadow: ShadowDispatcher | None = None
    classifier: IntentService | None = None
    sleep: Callable[[float], Any] = asyncio.sleep
    sticky: dict[str, str | None] = field(default_factory=dict)
    admission: AdmissionPort | None = None
    delivery: DeliveryPort | None = None
    books: BooksPort | None = None
    explain: bool = False
    """Only deciding (``/v1/route/explain``): read stickiness, never write it."""
    tools: ToolRegistry | None = None
    """The server tools (set for a request that has some: ``state['server_tools']``)."""


@dataclass(slots=True)
class StreamHandle:
    """An upstream stream whose first delta has arrived (so the 200 can be committed)."""

    target: str
    model: str
    first: Delta
    rest: AsyncIterator[Delta]
    opened_at: float
    first_at: float
    filters: list[Callable[[AsyncIterator[Delta]], AsyncIterator[Delta]]] = field(default_factory=list)
    relay: AsyncIterator[Delta] | None = None
    """Set when the output guard already holds the stream (its first window judged before the 200,
    ``agent/guard_window.py``): the relay's source instead of ``first`` + ``rest`` (already under its
    watchdog and the output guard; other ``filters`` still apply)."""


class PipelineState(TypedDict, total=False):
    request: ChatInput
    needs_intent: bool
    max_attempts: int
    cached: dict[str, Any] | None
    cache_key: str | None
    intent: IntentResult | None
    route: RouteDecision
    messages: list[dict[str, Any]]
    """What the providers (and shadows) are sent: the request after the input guard (masked)."""
    guard_policy: GuardPolicy | None
    masks: MaskTable | None
    """The input guard's placeholders, restored in the answer by the output guard."""
    target_index: int
    attempt: int
    completion: Completion | None
    stream: StreamHandle | None
    usage: Usage | None
    error: GatewayError | None
    reply: Reply | None
    server_tools: list[str]
    """The server tools this request may call (``gateway/tools/access.py``); absent: none, and the
    flow never enters the tool loop."""
    tools_from_route: bool
    """The server tools came from the route's offer only (the request named none): ``auto``
    narrows them to those the prompt needs (``nodes/intent.py``)."""
    regenerate: bool
    """One regeneration is left for an answer the output guard blocks (``nodes/regenerate.py``)."""
    regenerated: str | None
    """``sync`` or ``stream`` while the regenerated answer's outcome is not counted yet."""
