"""Pure-ASGI middleware: request id, body size limit, text the database cannot store, metrics,
access log, last-resort error body.

Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through without
buffering and the per-request cost stays a few microseconds.

The request id is always minted here (``uuid4().hex``): it keys the usage record, the quota
reservation, the response ``id``, feedback and shadow pairs, so a client must never choose it. A
client's own ``X-Request-ID`` (or OpenAI's ``X-Client-Request-Id``) is kept for correlation only:
logged as ``client_request_id``, stored in the usage record and echoed as ``x-client-request-id``.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import InvalidRequest, PayloadTooLarge, internal_error_body
from gateway.observability import access, metrics, tracing
from gateway.schemas.anthropic import error_bytes_from_openai, is_messages_path
from gateway.schemas.storable import unstorable_in_body, unstorable_in_target

log = structlog.get_logger("prism.access")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_KNOWN_ROUTES = metrics.LabelSet()
_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    502: "upstream_error",
    504: "timeout_error",
}
_QUIET_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})
_UNCOUNTED_PATHS = _QUIET_ROUTES
_UPLOAD_PATHS = frozenset({"/v1/jobs", "/v1/audio/transcriptions"})
"""Routes that take file uploads: their body limit is the upload limit (each checks its own too)."""


def route_label(scope: Scope) -> str:
    return access.route_of(scope)


class _BodyTooLarge(Exception):
    pass


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes or max_body_bytes
        """The body limit of ``POST /v1/jobs`` (uploads; a JSON body carries base64, 4/3 larger)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        fields: dict[str, Any] = state.setdefault("access", {})
        access.open_fields(fields, scope)
        client_id = _client_request_id(scope)
        if client_id is not None:
            state["client_request_id"] = fields["client_request_id"] = client_id
        span, token = self._start_trace(scope)
        trace_id = tracing.current_trace_id() if token is not None else None
        if trace_id is not None:
            structlog.contextvars.bind_contextvars(request_id=request_id, trace_id=trace_id)
        else:
            structlog.contextvars.bind_contextvars(request_id=request_id)
        status_holder = [500]
        response_started = False
        limit = self.max_body_bytes
        if scope.get("path") in _UPLOAD_PATHS:
            limit = self.max_upload_bytes * 4 // 3 + 64 * 1024
        echo = [(b"x-request-id", request_id.encode())]
        if client_id is not None:
            echo.append((b"x-client-request-id", client_id.encode()))

        declared = _header(scope, b"content-length")
        refusal: InvalidRequest | PayloadTooLarge | None = None
        if declared is not None and declared.isdigit() and int(declared) > limit:
            refusal = PayloadTooLarge(f"Request body exceeds {limit} bytes")
        elif (problem := unstorable_in_target(scope)) is not None:
            refusal = InvalidRequest(problem, code="invalid_text")
        if refusal is not None:
            await self._send_error(send, refusal.status_code, refusal.json_bytes(), echo, scope)
            self._observe(scope, refusal.status_code, started, request_id)
            self._end_trace(scope, span, token, refusal.status_code)
            structlog.contextvars.clear_contextvars()
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *echo]}
            await send(message)

        app_receive: Receive = limited_receive
        counted = scope.get("path") not in _UNCOUNTED_PATHS  # a scrape is not traffic (#26)
        if counted:
            metrics.INFLIGHT.inc()
        try:
            if not scope.get("prism.hot") and _has_inspectable_body(scope):
                # Off the hot path (which checks its own body while parsing it): read the body once,
                # refuse text the database could not store, then hand the same bytes to the app.
                body = await _read_body(limited_receive)
                problem = unstorable_in_body(body, _header(scope, b"content-type") or "")
                if problem is not None:
                    invalid = InvalidRequest(problem, code="invalid_text")
                    status_holder[0] = invalid.status_code
                    response_started = True
                    await self._send_error(send, invalid.status_code, invalid.json_bytes(), echo, scope)
                    return
                app_receive = _replay(body, receive)
            await self.app(scope, app_receive, tracking_send)
        except _BodyTooLarge:
            error = PayloadTooLarge(f"Request body exceeds {limit} bytes")
            if not response_started:
                status_holder[0] = 413
                await self._send_error(send, 413, error.json_bytes(), echo, scope)
        except ClientDisconnect:
            status_holder[0] = 499  # the client left before its request body arrived: nothing to answer
            log.info("client_disconnected", phase="request_body")
        except Exception:
            log.exception("unhandled_error")
            if not response_started:
                status_holder[0] = 500
                await self._send_error(send, 500, internal_error_body(), echo, scope)
        finally:
            if counted:
                metrics.INFLIGHT.dec()
            self._observe(scope, status_holder[0], started, request_id)
            self._end_trace(scope, span, token, status_holder[0])
            structlog.contextvars.clear_contextvars()

    @staticmethod
    def _start_trace(scope: Scope) -> tuple[Span | None, object | None]:
        """The server span (tracing on) or the client's context alone (``traceparent`` sent, tracing off)."""
        traceparent = _header(scope, b"traceparent")
        if not tracing.enabled():
            if traceparent is None:
                return None, None
            return None, otel_context.attach(tracing.extract({"traceparent": traceparent}))
        parent = tracing.extract(_carrier(scope)) if traceparent is not None else None
        method = str(scope.get("method", "HTTP"))
        span = tracing.tracer().start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": str(scope.get("path", "")),
                "url.scheme": str(scope.get("scheme", "http")),
            },
        )
        return span, otel_context.attach(trace.set_span_in_context(span, parent))

    @staticmethod
    def _end_trace(scope: Scope, span: Span | None, token: object | None, status: int) -> None:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
        if span is None:
            return
        route = route_label(scope)
        if route != "unmatched":
            span.update_name(f"{scope.get('method', 'HTTP')} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            span.set_attribute("prism.request_id", request_id)
        if status >= 500:
            span.set_status(StatusCode.ERROR)
            span.set_attribute("error.type", str(status))
        span.end()

    @staticmethod
    async def _send_error(
        send: Send, status: int, body: bytes, echo: list[tuple[bytes, bytes]], scope: Scope
    ) -> None:
        if is_messages_path(scope.get("path", "")):  # the Anthropic API family's envelope
            body = error_bytes_from_openai(status, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *echo,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _observe(scope: Scope, status: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        route = route_label(scope)
        state = scope.get("state", {})
        model = state.get("metric_model", "none")
        metrics.REQUESTS.labels(route=route, model=model, status=str(status)).inc()
        metrics.REQUEST_LATENCY.labels(route=route, model=model).observe(elapsed)
        fields: dict[str, Any] = state.get("access", {})
        if status >= 400 and "error_type" not in fields:
            # Errors the completion service did not account for itself (auth, validation, 404...).
            metrics.ERRORS.labels(
                type=_ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
            ).inc()
        elif status < 400 and "error_type" in fields:
            metrics.ERRORS.labels(type="stream_error").inc()  # the stream failed after its 200
        if route in _QUIET_ROUTES:
            return
        log.info(
            "access",
            method=scope.get("method"),
            route=route,
            status=status,
            latency_ms=round(elapsed * 1000, 2),
            model=model,
            **fields,
        )


def _carrier(scope: Scope) -> dict[str, str]:
    return {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in scope.get("headers", ())
        if key in (b"traceparent", b"tracestate", b"baggage")
    }


def _client_request_id(scope: Scope) -> str | None:
    """The client's own correlation id (``X-Request-ID`` or ``X-Client-Request-Id``), if well formed."""
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id" or key == b"x-client-request-id":
            text: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.match(text):
                return text
    return None


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_INSPECTED_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"text/plain")


def _has_inspectable_body(scope: Scope) -> bool:
    if scope.get("method") not in _BODY_METHODS:
        return False
    content_type = b""
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            content_type = value.lower()
            break
    return not content_type or content_type.startswith(_INSPECTED_TYPES) or b"+json" in content_type


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields ``body`` once, then defers to the real one (disconnect notices)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
