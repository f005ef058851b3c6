"""The usage record: what one /v1 request did and cost."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class UsageStatus(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    INCOMPLETE = "incomplete"  # a stream ended early: client left, upstream died, drain timeout
    REJECTED = "rejected"  # refused before any model call: quota, guardrail, validation


@dataclass(frozen=True, slots=True)
class UsageTags:
    """What a request's caller knows about it beyond the wire request: the application and prompt
    version it ran (``model: "app:<name>"``) and the kind of traffic (``evaluation``)."""

    application: str | None = None
    prompt_version_id: str | None = None
    traffic: str | None = None
    app_arm: str | None = None
    """The arm of the application's live rollout that served it (a split between versions/models)."""
    shadow: Any = None
    """A planned shadow of a candidate prompt version (``services.rollouts.ShadowPlan``): the
    completion service hangs its pair on the request, launched when the primary's books close."""


@dataclass(slots=True)
class UsageRecord:
    request_id: str
    """Minted by the gateway; the record's key."""
    client_request_id: str | None = None
    """The client's ``X-Request-ID`` (correlation only: never deduplicates anything)."""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    user_id: str | None = None
    api_key_id: str | None = None
    tier: str | None = None
    route: str = "chat.completions"
    model_requested: str | None = None
    model_served: str | None = None
    provider: str | None = None
    intent: str | None = None
    routing_tier: str | None = None
    experiment: str | None = None
    arm: str | None = None
    cache_hit: bool = False
    streamed: bool = False
    status: UsageStatus = UsageStatus.OK
    http_status: int = 200
    error_type: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    attempts: int = 0
    fallback_used: bool = False
    guard_flags: str | None = None
    conversation_id: str | None = None
    tool_rounds: int = 0
    """Tool loop rounds (model answers whose server tool calls Prism ran)."""
    tool_calls: int = 0
    """Server tool calls Prism ran for this request (the ``tool_calls`` audit table has each)."""
    application: str | None = None
    """The application (``model: "app:<name>"``) the request called (issue #24)."""
    prompt_version_id: str | None = None
    traffic: str | None = None
    """``evaluation`` for an evaluation run's calls; ``None`` for product traffic."""
    app_arm: str | None = None
    """The application rollout's arm (issue #24, item 7)."""

    def as_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in self.__slots__}
        row["status"] = self.status.value
        return row
