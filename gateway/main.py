"""The application factory: middleware, routers and error handlers. No I/O at import."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.api import (
    admin,
    admin_config,
    anthropic,
    applications,
    audio,
    auth,
    collections,
    conversations,
    datasets,
    embeddings,
    evaluations,
    experiments,
    health,
    jobs,
    keys,
    openai,
    prompts,
    quotas,
    responses_api,
    routing_policy,
    tool_policy,
)
from gateway.api.console import mount_console
from gateway.api.endpoints import unknown_url
from gateway.api.hot_path import PrismApp
from gateway.api.mcp import METHODS as MCP_METHODS
from gateway.api.mcp import McpRoute
from gateway.api.responses import OrjsonResponse
from gateway.config.settings import Settings, get_settings
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    as_database_unavailable,
    error_response,
)
from gateway.lifespan import lifespan
from gateway.observability.logging import configure_logging
from gateway.observability.middleware import GatewayMiddleware
from gateway.schemas.anthropic import MessagesRequest, is_messages_path
from gateway.schemas.openai import ChatCompletionRequest
from gateway.security.headers import SecurityHeadersMiddleware, require_production_surface


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    if is_messages_path(request.url.path):  # the Anthropic API family (e.g. a 405 on GET /v1/messages)
        return anthropic.anthropic_error_response(exc, getattr(request.state, "request_id", None))
    return error_response(exc)


async def _database_error(request: Request, exc: Exception) -> Response:
    """Database connection failures anywhere in a request: 503 + Retry-After, not 500."""
    unavailable = as_database_unavailable(exc)
    if unavailable is None:
        raise exc  # a real bug: the last-resort 500 of the gateway middleware
    return error_response(unavailable)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = ".".join(str(part) for part in first["loc"][1:]) or None
    return await _gateway_error(
        request,
        InvalidRequest(
            f"Invalid value for {param or 'request'}: {first['msg']}", param=param, code="invalid_value"
        ),
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error: GatewayError
    if exc.status_code == 404:
        error = unknown_url(request)
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}")
    else:
        error = InvalidRequest(str(exc.detail))
        error.status_code = exc.status_code  # type: ignore[misc]
    return await _gateway_error(request, error)


def create_app(settings: Settings | None = None) -> PrismApp:
    settings = settings or get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    require_production_surface(settings)
    docs = settings.docs_served  # closed in production unless GATEWAY_DOCS_ENABLED
    app = PrismApp(
        title="Prism",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        docs_url=None,  # served by gateway.api.console with local assets (no CDN)
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(OSError, _database_error)
    app.include_router(health.router)
    app.include_router(openai.router)
    app.include_router(anthropic.router)
    app.include_router(responses_api.router)
    app.include_router(embeddings.router)
    app.include_router(collections.router)
    app.include_router(jobs.router)
    app.include_router(audio.router)  # issue #23 item 4: speech-to-text (docs/audio.md)
    app.include_router(admin_config.router)
    app.include_router(auth.router)
    app.include_router(keys.router)
    app.include_router(conversations.router)
    app.include_router(admin.router)
    app.include_router(quotas.router)
    app.include_router(routing_policy.router)
    app.include_router(tool_policy.router)
    app.include_router(experiments.router)
    app.include_router(experiments.feedback_router)
    app.include_router(prompts.router)  # issue #24: prompts, applications, datasets, evaluations
    app.include_router(applications.router)
    app.include_router(applications.run_router)
    app.include_router(datasets.router)
    app.include_router(evaluations.router)
    mount_console(app, docs=docs)
    app.router.add_route(McpRoute.path, McpRoute(), methods=list(MCP_METHODS), include_in_schema=False)  # type: ignore[arg-type]
    app.add_middleware(
        GatewayMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.jobs_max_upload_bytes,
    )
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)  # outermost
    app.serve_hot(
        {**openai.hot_routes(), **anthropic.hot_routes()},
        lambda hot: SecurityHeadersMiddleware(
            GatewayMiddleware(hot, max_body_bytes=settings.max_body_bytes), settings=settings
        ),
    )

    original_openapi = app.openapi

    def openapi() -> dict[str, object]:
        schema = original_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for request_model in (ChatCompletionRequest, MessagesRequest):
            definition = request_model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, nested in definition.pop("$defs", {}).items():
                components.setdefault(name, nested)
            components.setdefault(request_model.__name__, definition)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
