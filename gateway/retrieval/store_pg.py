"""The Postgres index: pgvector (HNSW, cosine) per collection, pg_trgm (GIN) for keywords.

Each collection gets ``retrieval_vec_<id> (chunk_id bigint PK → retrieval_chunks, embedding
vector(<dims>))`` with an HNSW index, created with the collection (its dimensions come from its
embedding model) and dropped with it. Keywords: ``content ILIKE '%term%'`` over a GIN
``gin_trgm_ops`` index on ``retrieval_chunks.content`` (terms of three or more characters use the
index; shorter ones scan the collection's rows).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.retrieval.store import ChunkHit, CollectionRow, NewDocument

_COLLECTION_COLUMNS = (
    "c.id, c.name, c.description, c.embedding_model, c.dimensions, c.chunk_chars, c.chunk_overlap, "
    "c.readers, c.created_by, c.created_at, "
    "(SELECT count(*) FROM retrieval_documents d WHERE d.collection_id = c.id), "
    "(SELECT count(*) FROM retrieval_chunks k WHERE k.collection_id = c.id)"
)


def _vec_table(collection_id: int) -> str:
    return f"retrieval_vec_{int(collection_id)}"


def vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _collection(row: Any) -> CollectionRow:
    readers = row[7]
    if isinstance(readers, str):
        readers = json.loads(readers)
    return CollectionRow(
        id=row[0],
        name=row[1],
        description=row[2] or "",
        embedding_model=row[3],
        dimensions=row[4],
        chunk_chars=row[5],
        chunk_overlap=row[6],
        readers=readers,
        created_by=row[8],
        created_at=row[9],
        documents=int(row[10]),
        chunks=int(row[11]),
    )


class PgStore:
    backend = "postgres"

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def check(self) -> str | None:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT extname FROM pg_extension"))).scalars().all()
        missing = [ext for ext in ("vector", "pg_trgm") if ext not in rows]
        if missing:
            return (
                f"Postgres extension(s) {', '.join(missing)} not installed in this database: use an image "
                "that carries pgvector (e.g. pgvector/pgvector:pg16) and run the migrations again"
            )
        return None

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
    ) -> CollectionRow:
        async with self.engine.begin() as conn:
            cid = (
                await conn.execute(
                    text(
                        "INSERT INTO retrieval_collections (name, description, embedding_model, dimensions, "
                        "chunk_chars, chunk_overlap, readers, created_by, created_at) VALUES (:name, "
                        ":description, "
                        ":model, :dims, :chars, :overlap, CAST(:readers AS json), :by, :at) RETURNING id"
                    ),
                    {
                        "name": name,
                        "description": description,
                        "model": embedding_model,
                        "dims": dimensions,
                        "chars": chunk_chars,
                        "overlap": chunk_overlap,
                        "readers": None if readers is None else json.dumps(readers),
                        "by": created_by,
                        "at": datetime.now(UTC),
                    },
                )
            ).scalar_one()
            table = _vec_table(cid)
            await conn.execute(
                text(
                    f"CREATE TABLE {table} (chunk_id bigint PRIMARY KEY REFERENCES retrieval_chunks(id) "
                    f"ON DELETE CASCADE, embedding vector({int(dimensions)}) NOT NULL)"
                )
            )
            await conn.execute(
                text(f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)")
            )
        row = await self.get_collection(cid)
        assert row is not None
        return row

    async def list_collections(self) -> list[CollectionRow]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(f"SELECT {_COLLECTION_COLUMNS} FROM retrieval_collections c ORDER BY c.id")
            )
            return [_collection(r) for r in rows]

    async def get_collection(self, collection_id: int) -> CollectionRow | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(f"SELECT {_COLLECTION_COLUMNS} FROM retrieval_collections c WHERE c.id = :id"),
                    {"id": collection_id},
                )
            ).first()
        return _collection(row) if row is not None else None

    async def delete_collection(self, collection_id: int) -> bool:
        async with self.engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {_vec_table(collection_id)}"))
            result = await conn.execute(
                text("DELETE FROM retrieval_collections WHERE id = :id"), {"id": collection_id}
            )
        return bool(result.rowcount)

    async def add_document(self, doc: NewDocument) -> dict[str, Any]:
        now = datetime.now(UTC)
        flagged = sum(1 for c in doc.chunks if c.flagged)
        async with self.engine.begin() as conn:
            doc_id = (
                await conn.execute(
                    text(
                        "INSERT INTO retrieval_documents (collection_id, filename, content_type, "
                        "size_bytes, sha256, "
                        "chars, chunk_count, flagged_chunks, created_by, created_at) VALUES (:c, :f, "
                        ":t, :s, :h, "
                        ":n, :k, :fl, :by, :at) RETURNING id"
                    ),
                    {
                        "c": doc.collection_id,
                        "f": doc.filename,
                        "t": doc.content_type,
                        "s": doc.size_bytes,
                        "h": doc.sha256,
                        "n": doc.chars,
                        "k": len(doc.chunks),
                        "fl": flagged,
                        "by": doc.created_by,
                        "at": now,
                    },
                )
            ).scalar_one()
            await self._insert_chunks(conn, doc, doc_id)
        return {"id": doc_id, "chunks": len(doc.chunks), "flagged_chunks": flagged, "created_at": now}

    async def _insert_chunks(self, conn: AsyncConnection, doc: NewDocument, doc_id: int) -> None:
        """Two statements per document, whatever its size: the chunks, then their vectors, each as
        one ``INSERT ... SELECT FROM unnest(<arrays>)``."""
        if not doc.chunks:
            return
        rows = await conn.execute(
            text(
                "INSERT INTO retrieval_chunks (collection_id, document_id, seq, start_offset, end_offset, "
                "content, injection_score, flagged) "
                "SELECT :c, :d, u.seq, u.s, u.e, u.content, u.score, u.flag "
                "FROM unnest(CAST(:seqs AS integer[]), CAST(:starts AS integer[]), CAST(:ends AS integer[]), "
                "CAST(:contents AS text[]), CAST(:scores AS double precision[]), CAST(:flags AS boolean[])) "
                "AS u(seq, s, e, content, score, flag) RETURNING id, seq"
            ),
            {
                "c": doc.collection_id,
                "d": doc_id,
                "seqs": [c.seq for c in doc.chunks],
                "starts": [c.start for c in doc.chunks],
                "ends": [c.end for c in doc.chunks],
                "contents": [c.content for c in doc.chunks],
                "scores": [float(c.injection_score) for c in doc.chunks],
                "flags": [bool(c.flagged) for c in doc.chunks],
            },
        )
        id_of = {int(seq): int(cid) for cid, seq in rows}
        await conn.execute(
            text(
                f"INSERT INTO {_vec_table(doc.collection_id)} (chunk_id, embedding) "
                "SELECT u.id, CAST(u.v AS vector) FROM unnest(CAST(:ids AS bigint[]), CAST(:vecs AS text[])) "
                "AS u(id, v)"
            ),
            {
                "ids": [id_of[c.seq] for c in doc.chunks],
                "vecs": [vector_literal(c.embedding) for c in doc.chunks],
            },
        )

    async def list_documents(self, collection_id: int) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT id, filename, content_type, size_bytes, sha256, chars, chunk_count, "
                    "flagged_chunks, "
                    "created_by, created_at FROM retrieval_documents WHERE collection_id = :c ORDER BY id"
                ),
                {"c": collection_id},
            )
            return [_document(r) for r in rows]

    async def delete_document(self, collection_id: int, document_id: int) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text("DELETE FROM retrieval_documents WHERE id = :d AND collection_id = :c"),
                {"d": document_id, "c": collection_id},
            )
        return bool(result.rowcount)

    async def dense(self, collection_id: int, vector: list[float], k: int) -> list[tuple[int, float]]:
        table = _vec_table(collection_id)
        async with self.engine.begin() as conn:
            await conn.execute(text("SET LOCAL hnsw.ef_search = 100"))
            rows = await conn.execute(
                text(
                    f"SELECT chunk_id, embedding <=> CAST(:v AS vector) AS d FROM {table} ORDER BY d LIMIT :k"
                ),
                {"v": vector_literal(vector), "k": k},
            )
            return [(int(r[0]), float(r[1])) for r in rows]

    async def keyword_candidates(
        self, collection_id: int, terms: list[str], limit: int
    ) -> tuple[list[tuple[int, str]], int]:
        params: dict[str, Any] = {"c": collection_id, "limit": limit}
        clauses = []
        for i, term in enumerate(terms):
            params[f"t{i}"] = like_pattern(term)
            clauses.append(f"content ILIKE :t{i}")
        async with self.engine.connect() as conn:
            total = (
                await conn.execute(
                    text("SELECT count(*) FROM retrieval_chunks WHERE collection_id = :c"),
                    {"c": collection_id},
                )
            ).scalar_one()
            if not clauses:
                return [], int(total)
            rows = await conn.execute(
                text(
                    "SELECT id, content FROM retrieval_chunks WHERE collection_id = :c "
                    f"AND ({' OR '.join(clauses)}) LIMIT :limit"
                ),
                params,
            )
            return [(int(r[0]), str(r[1])) for r in rows], int(total)

    async def chunks(self, ids: list[int]) -> dict[int, ChunkHit]:
        if not ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT k.id, k.document_id, d.filename, k.seq, k.start_offset, k.end_offset, "
                    "k.content, k.flagged "
                    "FROM retrieval_chunks k JOIN retrieval_documents d ON d.id = k.document_id "
                    "WHERE k.id = ANY(:ids)"
                ),
                {"ids": ids},
            )
            return {int(r[0]): ChunkHit(*r) for r in rows}

    async def aclose(self) -> None:
        return None  # the engine belongs to the accounts


def _document(r: Any) -> dict[str, Any]:
    created = r[9]
    return {
        "id": r[0],
        "object": "collection.document",
        "filename": r[1],
        "content_type": r[2],
        "bytes": r[3],
        "sha256": r[4],
        "chars": r[5],
        "chunks": r[6],
        "flagged_chunks": r[7],
        "created_by": r[8],
        "created_at": created if isinstance(created, str) else created.isoformat(),
    }
