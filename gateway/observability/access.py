"""The fields of one request's ``access`` log event, gathered while the request runs.

The middleware opens a dict per request (``scope["state"]["access"]``, also held in a
context variable) and logs it once the response is done; the completion service adds
who/what/how much here. Prompts appear only with ``GATEWAY_LOG_PROMPTS=true``; answers
and secrets never do.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, Protocol

_fields: ContextVar[dict[str, Any] | None] = ContextVar("prism_access_fields", default=None)
_scope: ContextVar[MutableMapping[str, Any] | None] = ContextVar("prism_access_scope", default=None)
_options = {"log_prompts": False}


def configure(*, log_prompts: bool) -> None:
    _options["log_prompts"] = log_prompts


def open_fields(fields: dict[str, Any], scope: MutableMapping[str, Any] | None = None) -> None:
    """Called by the middleware: ``fields`` collects this request's access log entry; ``scope`` is the
    request's ASGI scope (the router writes the matched route into it later)."""
    _fields.set(fields)
    _scope.set(scope)


def route_of(scope: Any) -> str:
    """The matched route's path template (``/v1/messages``), ``unmatched`` before/without a match."""
    route = scope.get("route") if scope is not None else None
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def current_route(default: str) -> str:
    """The route template of the request being handled, for metrics labelled by endpoint; ``default``
    outside a request (in-process calls such as job pipelines)."""
    scope = _scope.get()
    return route_of(scope) if scope is not None and scope.get("route") is not None else default


def current() -> dict[str, Any] | None:
    return _fields.get()


class UsageFields(Protocol):
    """What the access log copies from a request's usage record (``gateway.usage.record.UsageRecord``,
    named by shape: ``usage`` reports to ``observability``, not the other way round)."""

    @property
    def user_id(self) -> str | None: ...
    @property
    def model_requested(self) -> str | None: ...
    @property
    def model_served(self) -> str | None: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def route(self) -> str: ...
    @property
    def intent(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def cost_usd(self) -> float: ...
    @property
    def cache_hit(self) -> bool: ...
    @property
    def streamed(self) -> bool: ...
    @property
    def attempts(self) -> int: ...
    @property
    def fallback_used(self) -> bool: ...
    @property
    def ttft_ms(self) -> float | None: ...
    @property
    def error_type(self) -> str | None: ...


def note_usage(
    record: UsageFields, *, key_prefix: str | None = None, messages: list[dict[str, Any]] | None = None
) -> None:
    """Copy the request's usage record into its access log entry (no-op outside a request)."""
    fields = _fields.get()
    if fields is None:
        return
    fields.update(
        user_id=record.user_id,
        key_prefix=key_prefix,
        model_requested=record.model_requested,
        model_served=record.model_served,
        provider=record.provider,
        route_label=record.route,
        intent=record.intent,
        usage_status=str(record.status),
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cost_usd=record.cost_usd,
        cache_hit=record.cache_hit,
        streamed=record.streamed,
        attempts=record.attempts,
        fallback=record.fallback_used,
    )
    if record.ttft_ms is not None:
        fields["ttft_ms"] = record.ttft_ms
    if record.error_type is not None or record.status in ("error", "rejected"):
        fields["error_type"] = record.error_type or str(record.status)  # also: ERRORS already counted
    if _options["log_prompts"] and messages is not None:
        fields["prompt"] = messages
