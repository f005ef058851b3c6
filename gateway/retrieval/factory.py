"""Builds the retrieval service for the configured database (called once by the lifespan)."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.retrieval.service import RetrievalService
from gateway.retrieval.store import Store
from gateway.retrieval.store_pg import PgStore
from gateway.retrieval.store_sqlite import SqliteStore, index_path
from gateway.services.embeddings import EmbeddingService


def open_store(database_url: str, engine: AsyncEngine) -> Store | None:
    """pgvector on Postgres, sqlite-vec on a SQLite file; None for an in-memory SQLite database
    (a second connection could not see it)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return SqliteStore(index_path(database))
    return PgStore(engine)


async def open_retrieval(
    database_url: str, engine: AsyncEngine, embeddings: EmbeddingService
) -> RetrievalService | None:
    store = open_store(database_url, engine)
    if store is None:
        return None
    service = RetrievalService(store=store, embeddings=embeddings)
    await service.probe()
    return service
