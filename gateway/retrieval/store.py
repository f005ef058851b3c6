"""What the service needs from an index, and the rows it passes around.

Two implementations: ``store_pg.PgStore`` (pgvector for vectors, pg_trgm for keywords) and
``store_sqlite.SqliteStore`` (sqlite-vec and FTS5's trigram tokenizer). In Postgres the tables
(``retrieval_collections``, ``retrieval_documents``, ``retrieval_chunks``) come from the Alembic
migration and each collection's vector table (``retrieval_vec_<id>``, sized to its embedding
model's dimensions) is created with the collection and dropped with it; the SQLite index keeps the
same tables, plus its vectors and FTS5 table, in a file of its own that it creates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class CollectionRow:
    id: int
    name: str
    description: str
    embedding_model: str
    dimensions: int
    chunk_chars: int
    chunk_overlap: int
    readers: list[str] | None
    created_by: str | None
    created_at: datetime
    documents: int = 0
    chunks: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "collection",
            "name": self.name,
            "description": self.description,
            "embedding_model": self.embedding_model,
            "dimensions": self.dimensions,
            "chunk_chars": self.chunk_chars,
            "chunk_overlap": self.chunk_overlap,
            "readers": self.readers,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "documents": self.documents,
            "chunks": self.chunks,
        }


@dataclass(frozen=True, slots=True)
class NewChunk:
    seq: int
    start: int
    end: int
    content: str
    injection_score: float
    flagged: bool
    embedding: list[float]


@dataclass(frozen=True, slots=True)
class NewDocument:
    collection_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    chars: int
    created_by: str | None
    chunks: list[NewChunk] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChunkHit:
    chunk_id: int
    document_id: int
    filename: str
    seq: int
    start: int
    end: int
    content: str
    flagged: bool


class Store(Protocol):
    backend: str
    """``postgres`` or ``sqlite``: a metric label and a log field."""

    async def check(self) -> str | None:
        """``None`` when the vector and keyword extensions work here, else why not."""
        ...

    async def create_collection(
        self,
        *,
        name: str,
        description: str,
        embedding_model: str,
        dimensions: int,
        chunk_chars: int,
        chunk_overlap: int,
        readers: list[str] | None,
        created_by: str | None,
    ) -> CollectionRow: ...

    async def list_collections(self) -> list[CollectionRow]: ...

    async def get_collection(self, collection_id: int) -> CollectionRow | None: ...

    async def delete_collection(self, collection_id: int) -> bool: ...

    async def add_document(self, doc: NewDocument) -> dict[str, Any]: ...

    async def list_documents(self, collection_id: int) -> list[dict[str, Any]]: ...

    async def delete_document(self, collection_id: int, document_id: int) -> bool: ...

    async def dense(self, collection_id: int, vector: list[float], k: int) -> list[tuple[int, float]]:
        """Chunk ids nearest ``vector`` (cosine distance, smallest first)."""
        ...

    async def keyword_candidates(
        self, collection_id: int, terms: list[str], limit: int
    ) -> tuple[list[tuple[int, str]], int]:
        """(chunk id, content) of chunks containing any term (case-insensitive substring), and
        the collection's chunk count."""
        ...

    async def chunks(self, ids: list[int]) -> dict[int, ChunkHit]: ...

    async def aclose(self) -> None: ...
