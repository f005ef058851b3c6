"""The answer to a path Prism does not serve: OpenAI's ``Invalid URL`` 404, naming what is served.

Under ``/v1`` the message lists the OpenAI-compatible endpoints this app declares (read from its
OpenAPI schema, so an endpoint added later is listed without touching this module), and points the
callers of APIs Prism does not implement — the legacy ``/v1/completions`` above all — to the one
that replaces them (docs/api.md).
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import NotFound


class UnknownURL(NotFound):
    error_type = "invalid_request_error"  # OpenAI's type for ``Invalid URL``
    default_code = "unknown_url"


_INSTEAD = {
    "/v1/completions": "the legacy text completions API is not served; send the prompt as a user message "
    "to POST /v1/chat/completions",
    "/v1/engines": "engines are not served; GET /v1/models lists the models",
}


def served_endpoints(request: Request) -> list[str]:
    """``METHOD /v1/...`` of every OpenAI-compatible route the app declares, sorted (from its OpenAPI
    schema, built once and cached by FastAPI whether or not ``/openapi.json`` is served)."""
    schema = request.app.openapi()
    served = [
        f"{method.upper()} {path}"
        for path, operations in schema.get("paths", {}).items()
        if path.startswith("/v1/")
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]
    return sorted(served, key=lambda item: (item.split(" ", 1)[1], item))


def unknown_url(request: Request) -> UnknownURL:
    """404 ``unknown_url``: OpenAI's ``Invalid URL (METHOD /path)``, with the served ``/v1`` endpoints."""
    path = request.url.path
    message = f"Invalid URL ({request.method} {path})"
    if path.startswith("/v1/") or path == "/v1":
        instead = next((why for prefix, why in _INSTEAD.items() if path.startswith(prefix)), None)
        if instead:
            message += f": {instead}"
        message += ". Supported endpoints: " + ", ".join(served_endpoints(request))
    return UnknownURL(message)
