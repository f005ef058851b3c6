"""An in-process Prism (ASGI transport, the real lifespan, SQLite) whose spans land in memory: the
harness of the tracing tests. Yields the client, the exporter and the app's ``AppState``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.config.settings import get_settings
from gateway.main import create_app
from gateway.observability import tracing


@contextlib.asynccontextmanager
async def traced_app(
    tmp_path: Path, config_text: str
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter, Any]]:
    config = tmp_path / "prism.yaml"
    config.write_text(config_text)
    settings = get_settings(
        config=config,
        auth_enabled=False,
        env="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/prism.db",
        usage_spill_dir=tmp_path / "spill",
    )
    exporter = InMemorySpanExporter()
    tracing.configure_tracing(settings, exporter=exporter)
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app) as state:

            async def with_state(scope: Any, receive: Any, send: Any) -> None:
                scope["state"] = dict(state or {})
                await app(scope, receive, send)

            transport = httpx.ASGITransport(app=with_state)
            async with httpx.AsyncClient(transport=transport, base_url="http://prism") as http:
                yield http, exporter, (state or {})["app"]
    finally:
        tracing.shutdown_tracing()
