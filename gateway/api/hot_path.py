"""The hot route, served without FastAPI's routing and dependency solving.

``POST /v1/chat/completions`` is most of a gateway's traffic. Through FastAPI it pays for route
matching over every router, dependency resolution, the exception and exit-stack middlewares —
about a sixth of a request's CPU in the production benchmark (docs/performance.md). This pure-ASGI
layer sits inside ``GatewayMiddleware`` (request id, metrics, access log, trace still apply) and
calls the same dependency functions and the same endpoint body directly; every other method and
path falls through to the FastAPI app, which still declares the route for OpenAPI and answers
``405`` for the wrong method. ``dependency_overrides`` do not apply on this path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import GatewayError, error_response

Handler = Callable[[Request], Awaitable[Response]]


class HotPath:
    def __init__(self, app: ASGIApp, *, routes: Mapping[str, tuple[Any, Handler]]) -> None:
        """``routes``: path → (the FastAPI route object, for route labels and spans; the handler)."""
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if hit is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        route, handler = hit
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = error_response(exc)
        await response(scope, receive, send)
