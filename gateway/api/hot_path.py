"""The hot route, served without FastAPI's routing, dependency solving or middleware stack.

``POST /v1/chat/completions`` is most of a gateway's traffic. Through FastAPI it pays for route
matching over every router, dependency resolution, the exception and exit-stack middlewares —
about a sixth of a request's CPU in the production benchmark (docs/performance.md) — and, outside
the user middlewares, Starlette's ``ServerErrorMiddleware`` and FastAPI's telemetry and body-limit
wrappers (another coroutine and ``send`` wrapper each, per request). ``PrismApp`` (the FastAPI
subclass the factory builds) hands that method and path straight to ``GatewayMiddleware`` around
``HotPath``: request id, body limit, metrics, access log, trace and the last-resort 500 still
apply, and the same dependency functions and endpoint body run. Every other method and path goes
through FastAPI as usual, which still declares the route for OpenAPI and answers ``405`` for the
wrong method. ``dependency_overrides`` do not apply on this path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import GatewayError, error_response

Handler = Callable[[Request], Awaitable[Response]]


class HotPath:
    """The endpoint of the hot chain: one of ``routes``, by path (the caller matched it)."""

    def __init__(self, *, routes: Mapping[str, tuple[Any, Handler]]) -> None:
        """``routes``: path → (the FastAPI route object, for route labels and spans; the handler)."""
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, handler = self.routes[scope["path"]]
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = error_response(exc)
        await response(scope, receive, send)


class PrismApp(FastAPI):
    """FastAPI, except that ``POST`` on a hot path skips the whole middleware stack for ``hot``."""

    hot: ASGIApp | None = None
    hot_paths: frozenset[str] = frozenset()

    def serve_hot(
        self, routes: Mapping[str, tuple[Any, Handler]], wrap: Callable[[ASGIApp], ASGIApp]
    ) -> None:
        """Serve ``routes`` through ``wrap(HotPath(routes))`` (``wrap`` adds the gateway middleware)."""
        self.hot = wrap(HotPath(routes=routes))
        self.hot_paths = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.hot is not None
            and scope["type"] == "http"
            and scope["path"] in self.hot_paths
            and scope["method"] == "POST"
        ):
            if self.root_path:
                scope["root_path"] = self.root_path
            scope["app"] = self
            scope["prism.hot"] = True  # the endpoint checks its own body (GatewayMiddleware skips it)
            await self.hot(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
