"""The gateway's error tree and the one renderer of OpenAI's error envelope.

Every failure a client can see is a ``GatewayError``; its class fixes the HTTP
status and OpenAI ``type``, the instance carries the message, ``param`` and
``code``. Vendor exceptions are translated at the provider edge into the
``Provider*`` branch and never reach the API layer raw.

    GatewayError
    ├── InvalidRequest            400 invalid_request_error
    │   ├── ContextTooLong        400 code=context_length_exceeded
    │   ├── UnsupportedParameter  400 code=unsupported_parameter
    │   └── ContentBlocked        400 guardrails (code=prompt_injection_detected, pii_blocked,
    │                                 output_denied_pattern, output_pii_blocked)
    ├── AuthenticationFailed      401 authentication_error
    ├── PermissionDenied          403 permission_error
    ├── NotFound                  404 not_found_error (ModelNotFound: code=model_not_found)
    ├── MethodNotAllowed          405
    ├── Conflict                  409
    ├── PayloadTooLarge           413
    ├── UnsupportedMediaType      415 (an upload whose bytes are not what it claims, or no kind we read)
    ├── RateLimited               429 rate_limit_exceeded (QuotaExceeded: insufficient_quota)
    ├── ProviderError             502 upstream failure, retryable unless stated
    │   ├── ProviderBadResponse   502 (not retryable)
    │   ├── ProviderRejected      400 upstream refused the request (no retry, no fallback);
    │   │                             413/422 as the upstream said (ProviderRejectedTooLarge, …Unprocessable)
    │   ├── ProviderRateLimited   429 from upstream, carries retry_after
    │   ├── ProviderUnavailable   503 (5xx, connection refused, open circuit)
    │   └── ProviderTimeout       504
    ├── DeadlineExceeded          504 the request's total deadline is spent
    └── ServiceUnavailable        503 the gateway itself (draining, dependency down)
        └── DatabaseUnavailable   503 + Retry-After: the database cannot be reached
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from starlette.responses import Response


class GatewayError(Exception):
    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def json_bytes(self) -> bytes:
        return orjson.dumps(self.body())

    @property
    def retryable(self) -> bool:
        return False


class InvalidRequest(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"


class ContextTooLong(InvalidRequest):
    default_code = "context_length_exceeded"


class RequestTooLarge(InvalidRequest):
    """A request no rate-limit window could ever admit (e.g. its tokens exceed the TPM limit)."""

    default_code = "request_too_large"


class UnsupportedParameter(InvalidRequest):
    default_code = "unsupported_parameter"


class ContentBlocked(InvalidRequest):
    """A guardrail refused the prompt or withheld the answer; ``code`` says which rule."""

    default_code = "content_policy_violation"


class AuthenticationFailed(GatewayError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFound(GatewayError):
    status_code = 404
    error_type = "not_found_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class Conflict(GatewayError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLarge(GatewayError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    status_code = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_media_type"


class RateLimited(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class QuotaExceeded(RateLimited):
    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class ProviderError(GatewayError):
    """An upstream failure. ``retryable`` failures may be retried on the same target."""

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        target: str | None = None,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        param: str | None = None,
        code: str | None = None,
        upstream_type: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.target = target
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        self.upstream_type = upstream_type
        """The upstream's own error ``type``, rendered instead of the class's (docs/api.md)."""

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.upstream_type:
            body["error"]["type"] = self.upstream_type
        return body

    @property
    def retryable(self) -> bool:
        return True


class ProviderBadResponse(ProviderError):
    default_code = "upstream_bad_response"

    @property
    def retryable(self) -> bool:
        return False


class ProviderRejected(ProviderError):
    """The upstream refused the request itself (4xx): the client must change it; no retry, no fallback."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "upstream_rejected"

    @property
    def retryable(self) -> bool:
        return False


class ProviderRejectedTooLarge(ProviderRejected):
    status_code = 413


class ProviderRejectedUnprocessable(ProviderRejected):
    status_code = 422


class ProviderRateLimited(ProviderError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "upstream_rate_limited"


class ProviderUnavailable(ProviderError):
    status_code = 503
    default_code = "upstream_unavailable"


class ProviderTimeout(ProviderError):
    status_code = 504
    error_type = "timeout_error"
    default_code = "upstream_timeout"


class DeadlineExceeded(GatewayError):
    status_code = 504
    error_type = "timeout_error"
    default_code = "deadline_exceeded"


class ServiceUnavailable(GatewayError):
    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"


class ServerShuttingDown(ServiceUnavailable):
    """A stream still open when the shutdown drain ran out of time."""

    default_code = "server_shutting_down"


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached (connection refused, lost, pool timed out): 503 with Retry-After.

    Raised by ``as_database_unavailable`` — the one translation point, used by the app's exception
    handler and by the authenticator (which also serves the hot path)."""

    def __init__(
        self, message: str = "The database is unavailable; retry shortly", *, retry_after: int = 2
    ) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, wherever the driver's adapter put it."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str):
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def as_database_unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """A ``DatabaseUnavailable`` when ``exc`` means "cannot reach the database", else None.

    Connection-level failures only (SQLAlchemy ``OperationalError``/``InterfaceError``, an
    invalidated connection, the pool's timeout, socket errors from the driver); a bad statement
    or bad data is a bug or a 4xx elsewhere and stays what it is."""
    from sqlalchemy import exc as sa_exc  # SQLAlchemy is imported by the app anyway; keep this module light

    if isinstance(exc, DatabaseUnavailable):
        return exc
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return DatabaseUnavailable()
        # asyncpg's server-side refusals reach SQLAlchemy as a generic DBAPIError: "the database system
        # is starting up / shutting down" (57P03, 57P01, 57P02), connection exceptions (class 08),
        # too many connections (class 53)
        state = sqlstate(exc)
        if state is not None and (state[:2] in {"08", "53"} or state.startswith("57P")):
            return DatabaseUnavailable()
        return None
    if isinstance(exc, sa_exc.TimeoutError | ConnectionError | TimeoutError):
        return DatabaseUnavailable()
    if isinstance(exc, OSError) and exc.errno is not None:  # e.g. "connect call failed", host unreachable
        return DatabaseUnavailable()
    return None


def internal_error_body() -> bytes:
    """The body of an unexpected failure: no stack trace, no exception text."""
    return orjson.dumps(
        {
            "error": {
                "message": "Internal server error",
                "type": "server_error",
                "param": None,
                "code": "internal_error",
            }
        }
    )


def error_response(exc: GatewayError) -> Response:
    """The one renderer of an error for clients: OpenAI's envelope, the error's status and headers."""
    return Response(
        content=exc.json_bytes(),
        status_code=exc.status_code,
        media_type="application/json",
        headers=exc.headers,
    )
