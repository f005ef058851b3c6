"""Security headers on every response, and the bearer token in front of ``/metrics``.

A pure-ASGI middleware placed outermost on both chains the factory builds (FastAPI's stack and the
hot path), so errors rendered by the gateway middleware get the headers too. The header lists are
built once; per request it costs one path test and one list concatenation on the response start.

Every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY``, ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'``
(the API serves no HTML, so nothing may load or frame it), and ``Strict-Transport-Security`` when
``hsts_max_age_s`` is positive (the default in production). The development API docs get a CSP
that lets them load their Swagger/ReDoc assets; ``/ui`` (the console) one that allows its own
same-origin assets only; on those paths a header the app set itself is kept, not duplicated.
Answers that carry credentials (``/auth/``, ``/api/keys``, ``/admin/users/``) get
``Cache-Control: no-store``.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config.settings import Settings
from gateway.errors import AuthenticationFailed

Header = tuple[bytes, bytes]

_API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI's assets come from /ui/static/vendor (no CDN); its page has one inline script.
_DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src blob:; connect-src 'self'; frame-ancestors 'none'"
)
_UI_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
NO_STORE_PREFIXES = ("/auth/", "/api/keys", "/admin/users/")
UI_PREFIX = "/ui"
DOCS_PATHS = frozenset({"/docs"})


def require_production_surface(settings: Settings) -> None:
    """A production server does not start with ``/metrics`` open."""
    token = settings.metrics_token
    if settings.env == "production" and (token is None or len(token.get_secret_value()) < 16):
        raise ValueError("GATEWAY_METRICS_TOKEN (at least 16 characters) is required in production")


def hsts_max_age(settings: Settings) -> int:
    if settings.hsts_max_age_s is not None:
        return max(0, settings.hsts_max_age_s)
    return 31_536_000 if settings.env == "production" else 0


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        common: list[Header] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        max_age = hsts_max_age(settings)
        if max_age > 0:
            common.append((b"strict-transport-security", f"max-age={max_age}; includeSubDomains".encode()))
        self.headers: list[Header] = [*common, (b"content-security-policy", _API_CSP)]
        self.no_store: list[Header] = [
            *self.headers,
            (b"cache-control", b"no-store"),
            (b"pragma", b"no-cache"),
        ]
        self.docs: list[Header] = [*common, (b"content-security-policy", _DOCS_CSP)]
        self.ui: list[Header] = [*common, (b"content-security-policy", _UI_CSP)]
        token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else None
        self.metrics_authorization = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(NO_STORE_PREFIXES):
            extra, dedupe = self.no_store, True
        elif path in DOCS_PATHS:
            extra, dedupe = self.docs, True
        elif path.startswith(UI_PREFIX):
            extra, dedupe = self.ui, True
        elif (
            path == "/metrics" and self.metrics_authorization is not None and not self._metrics_allowed(scope)
        ):
            await self._refuse_metrics(send)
            return
        else:  # the API, hot path included: nothing there sets these headers
            extra, dedupe = self.headers, False

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if dedupe:  # a header the app chose itself (its own CSP, Cache-Control) wins
                    headers = list(message.get("headers", ()))
                    present = {name.lower() for name, _ in headers}
                    headers.extend(h for h in extra if h[0] not in present)
                    message["headers"] = headers
                else:
                    message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _metrics_allowed(self, scope: Scope) -> bool:
        expected = self.metrics_authorization
        assert expected is not None
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, expected)
        return False

    async def _refuse_metrics(self, send: Send) -> None:
        error = AuthenticationFailed("Metrics require a bearer token", code="invalid_metrics_token")
        body = error.json_bytes()
        await send(
            {
                "type": "http.response.start",
                "status": error.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="metrics"'),
                    *self.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
