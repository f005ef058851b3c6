"""``/mcp``: Prism's MCP server over Streamable HTTP (docs/mcp.md; the server is
``gateway/tools/mcp_serve.py``).

This ASGI endpoint authenticates the caller exactly as ``/v1`` does (``Authorization: Bearer`` with
a Prism API key or access token, or ``X-API-Key``; anonymous when ``GATEWAY_AUTH_ENABLED`` is
false), leaves the :class:`Principal` in the scope and hands the request to the SDK's session
manager. ``GET`` and ``DELETE`` answer 405 (the endpoint is stateless: no stream, no session).
A refused caller gets HTTP 401 with ``WWW-Authenticate: Bearer`` and a JSON-RPC error
body (``{"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": ...}}``): what MCP
clients expect from an HTTP transport, before any MCP message is read.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from opentelemetry import context as otel_context
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError, ServiceUnavailable
from gateway.lifespan import AppState
from gateway.observability import metrics
from gateway.security.principal import ANONYMOUS, Principal
from gateway.tools.mcp_serve import PRINCIPAL_KEY, TRACE_CONTEXT_KEY

log = structlog.get_logger("prism.mcp_server")

UNAUTHENTICATED = -32001
SERVER_ERROR = -32000
"""JSON-RPC's implementation-defined server error: the endpoint is off, or the method is not POST."""
METHODS = ("GET", "POST", "DELETE")


class McpRoute:
    """The ASGI app mounted on ``/mcp`` (a class instance: Starlette serves it as raw ASGI)."""

    path = "/mcp"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self  # the route label of the request metrics, log and span (as FastAPI's routes do)
        state: AppState = scope["state"]["app"]
        endpoint = state.mcp_endpoint
        if endpoint is None:
            await _reply(send, 404, SERVER_ERROR, "The MCP endpoint is disabled on this gateway")
            return
        if scope["method"] != "POST":
            # stateless: no session to delete and no stream to open (the spec's answer is 405)
            await _reply(send, 405, SERVER_ERROR, "Only POST is served: this endpoint is stateless")
            return
        try:
            principal = await _authenticate(state, scope)
        except GatewayError as exc:
            metrics.MCP_SERVER_REQUESTS.labels(outcome="unauthenticated").inc()
            log.info("mcp_server_refused", status=exc.status_code, code=exc.code)
            status = exc.status_code
            await _reply(send, status, UNAUTHENTICATED, exc.message, challenge=status == 401)
            return
        metrics.MCP_SERVER_REQUESTS.labels(outcome="accepted").inc()
        scope[PRINCIPAL_KEY] = principal
        scope[TRACE_CONTEXT_KEY] = otel_context.get_current()
        await endpoint.manager.handle_request(scope, receive, send)


async def _authenticate(state: AppState, scope: Scope) -> Principal:
    if not state.settings.auth_enabled:
        return ANONYMOUS
    if state.accounts is None:
        raise ServiceUnavailable("Accounts are not available")
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
    return await state.accounts.authenticator.authenticate(
        authorization=headers.get("authorization"), x_api_key=headers.get("x-api-key")
    )


async def _reply(send: Send, status: int, code: int, message: str, *, challenge: bool = False) -> None:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    headers = [(b"content-type", b"application/json")]
    if challenge:
        headers.append((b"www-authenticate", b'Bearer realm="prism", error="invalid_token"'))
    if status == 405:
        headers.append((b"allow", b"POST"))
    payload = orjson.dumps(body)
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
