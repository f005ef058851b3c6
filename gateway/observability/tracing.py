"""OpenTelemetry tracing: off by default, configured once by the lifespan (nothing at import).

``GATEWAY_OTEL_ENABLED=true`` exports over OTLP/HTTP, configured by the standard
``OTEL_EXPORTER_OTLP_*`` / ``OTEL_SERVICE_NAME`` variables; ``GATEWAY_OTEL_CONSOLE=true``
prints spans to stdout (either one turns tracing on). Tests install an in-memory
exporter with ``configure_tracing(settings, exporter=...)``.

Spans: one server span per request (parent: the client's W3C ``traceparent``), one
per graph node, one ``gen_ai.chat {model}`` client span per provider attempt (retries
and fallbacks are separate attempts), and a root span per shadow call linked to the
primary attempt. The ``traceparent`` is injected into upstream provider requests.

When tracing is off, every helper here is one module-level flag check; an incoming
``traceparent`` is still parsed, logged as ``trace_id`` and passed upstream.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from gateway.config.settings import Settings

_NOOP: trace.Tracer = trace.NoOpTracer()
_state: dict[str, Any] = {"enabled": False, "tracer": _NOOP, "provider": None}

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def enabled() -> bool:
    return bool(_state["enabled"])


def tracer() -> trace.Tracer:
    tracer_: trace.Tracer = _state["tracer"]
    return tracer_


def configure_tracing(settings: Settings, *, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """Install the tracer provider; ``None`` (and nothing changed) when tracing is off.

    With ``exporter`` (tests) spans go through a ``SimpleSpanProcessor`` to it,
    whatever the settings say. The caller owns ``shutdown_tracing()``.
    """
    if exporter is None and not (settings.otel_enabled or settings.otel_console):
        return None
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "prism-gateway")})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        if settings.otel_enabled:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if settings.otel_console:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    _state.update(enabled=True, provider=provider, tracer=provider.get_tracer("prism.gateway"))
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the installed provider; tracing is off afterwards."""
    provider: TracerProvider | None = _state["provider"]
    _state.update(enabled=False, provider=None, tracer=_NOOP)
    if provider is not None:
        provider.shutdown()


def trace_id_of(span_context: SpanContext) -> str | None:
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def current_trace_id() -> str | None:
    return trace_id_of(trace.get_current_span().get_span_context())


def extract(headers: Mapping[str, str]) -> otel_context.Context:
    """The parent context from a W3C ``traceparent`` (and ``tracestate``/``baggage``)."""
    return propagate.extract(headers)


def inject(headers: dict[str, str], *, span: Span | None = None) -> None:
    """Add ``traceparent`` for ``span`` (or the current span: ours or the client's), if there is one."""
    if span is not None and span.is_recording():
        propagate.inject(headers, context=trace.set_span_in_context(span))
    elif trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)


def traced_node(name: str, fn: _F) -> _F:
    """Wrap a graph node ``(state, runtime)`` in a span ``node {name}``; a flag check when tracing is off."""

    @functools.wraps(fn)
    async def node(state: Any, runtime: Any) -> Any:
        if not _state["enabled"]:
            return await fn(state, runtime)
        with tracer().start_as_current_span(f"node {name}", attributes={"prism.node": name}):
            return await fn(state, runtime)

    return cast(_F, node)


def start_attempt(
    *,
    model: str,
    provider: str,
    upstream_model: str,
    target: str,
    attempt: int,
    params: Mapping[str, Any],
) -> Span:
    """A ``gen_ai.chat {model}`` client span for one provider attempt (not made current)."""
    if not _state["enabled"]:
        return trace.INVALID_SPAN
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": provider,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": upstream_model,
        "prism.target": target,
        "prism.attempt": attempt,
    }
    max_tokens = params.get("max_completion_tokens") or params.get("max_tokens")
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = int(max_tokens)
    if params.get("temperature") is not None:
        attributes["gen_ai.request.temperature"] = float(params["temperature"])
    return tracer().start_span(f"gen_ai.chat {model}", kind=SpanKind.CLIENT, attributes=attributes)


def end_attempt(
    span: Span,
    *,
    response_model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    error_type: str | None = None,
) -> None:
    if not span.is_recording():
        return
    if response_model:
        span.set_attribute("gen_ai.response.model", response_model)
    if input_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    if output_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
    if error_type is not None:
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, error_type))
    span.end()


@contextmanager
def shadow_span(
    model: str,
    *,
    primary: SpanContext | None,
    provider: str,
    upstream_model: str | None = None,
    pair_id: str | None = None,
) -> Iterator[Span]:
    """A new root span for a shadow call, linked to the primary's answering attempt."""
    if not _state["enabled"]:
        yield trace.INVALID_SPAN
        return
    links = [Link(primary)] if primary is not None and primary.is_valid else []
    with tracer().start_as_current_span(
        f"gen_ai.chat {model}",
        context=otel_context.Context(),
        kind=SpanKind.CLIENT,
        links=links,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider,
            "gen_ai.provider.name": provider,
            "prism.shadow": True,
            **({"gen_ai.request.model": upstream_model} if upstream_model else {}),
            **({"prism.shadow.pair_id": pair_id} if pair_id else {}),
        },
    ) as span:
        yield span


@contextmanager
def tool_span(name: str, *, call_id: str, description: str | None = None) -> Iterator[Span]:
    """An ``execute_tool {name}`` span (GenAI semantic conventions) around one tool call, made
    current; a failure is recorded with :func:`mark_tool_error`."""
    if not _state["enabled"]:
        yield trace.INVALID_SPAN
        return
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": "function",
    }
    if description:
        attributes["gen_ai.tool.description"] = description
    with tracer().start_as_current_span(
        f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes, record_exception=False
    ) as span:
        yield span


def mark_tool_error(span: Span, error_type: str, message: str) -> None:
    """Record a failed tool call on its span: ``error.type`` and an error status."""
    if span.is_recording():
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, message[:200]))
