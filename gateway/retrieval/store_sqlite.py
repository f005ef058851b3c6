"""The embedded index: sqlite-vec (cosine distance over float32 blobs), FTS5 trigram for keywords.

The standard library's ``sqlite3`` of this Python is built without extension loading, so the
index uses ``pysqlite3`` (the same DB-API with a bundled SQLite that loads extensions) and loads
``sqlite_vec`` into it. It keeps its tables in a file of its own beside the gateway's database
(``prism.db`` → ``prism-retrieval.db``), never in the gateway's file: two copies of the SQLite
library in one process must not open the same database (POSIX locks are per process, so one copy
closing the file drops the other's locks; SQLite's "How To Corrupt" §2.2.1), which is what a
shared file did here ("database disk image is malformed"). Calls run
in a worker thread, one at a time (one connection, WAL mode, a busy timeout). Each collection's
vectors live in ``retrieval_chunk_vectors`` (float32 blobs) and are ranked with
sqlite-vec's ``vec_distance_cosine``: an exact k-nearest-neighbour scan of the collection, the
same search ``vec0`` tables perform in sqlite-vec 0.1 (no ANN there either). ``vec0`` tables were
tried first, while the index still shared the gateway's file, and failed (``could not write
vector blob``), most likely from the same two-library locking; the scan needs no per-collection
DDL and is what ``vec0`` does anyway. ``retrieval_chunks_fts`` (FTS5, ``trigram``
tokenizer, rowid = chunk id) holds the keyword index.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from gateway.retrieval.store import ChunkHit, CollectionRow, NewDocument
from gateway.retrieval.store_pg import _document

_T = TypeVar("_T")

_COLLECTION_SQL = (
    "SELECT c.id, c.name, c.description, c.embedding_model, c.dimensions, c.chunk_chars, c.chunk_overlap, "
    "c.readers, c.created_by, c.created_at, "
    "(SELECT count(*) FROM retrieval_documents d WHERE d.collection_id = c.id), "
    "(SELECT count(*) FROM retrieval_chunks k WHERE k.collection_id = c.id) FROM retrieval_collections c"
)


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _row(r: Any) -> CollectionRow:
    created = r[9]
    return CollectionRow(
        id=r[0],
        name=r[1],
        description=r[2] or "",
        embedding_model=r[3],
        dimensions=r[4],
        chunk_chars=r[5],
        chunk_overlap=r[6],
        readers=json.loads(r[7]) if r[7] is not None else None,
        created_by=r[8],
        created_at=datetime.fromisoformat(created) if isinstance(created, str) else created,
        documents=int(r[10]),
        chunks=int(r[11]),
    )


SCHEMA = """
CREATE TABLE IF NOT EXISTS retrieval_collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(128) NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    embedding_model VARCHAR(128) NOT NULL,
    dimensions INTEGER NOT NULL,
    chunk_chars INTEGER NOT NULL,
    chunk_overlap INTEGER NOT NULL,
    readers JSON,
    created_by VARCHAR(64),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS retrieval_documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES retrieval_collections(id) ON DELETE CASCADE,
    filename VARCHAR(255) NOT NULL,
    content_type VARCHAR(64) NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 VARCHAR(64) NOT NULL,
    chars INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    flagged_chunks INTEGER NOT NULL DEFAULT 0,
    created_by VARCHAR(64),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_retrieval_documents_collection ON retrieval_documents (collection_id);
CREATE TABLE IF NOT EXISTS retrieval_chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES retrieval_collections(id) ON DELETE CASCADE,
    document_id INTEGER NOT NULL REFERENCES retrieval_documents(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    start_offset INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    content TEXT NOT NULL,
    injection_score FLOAT NOT NULL DEFAULT 0,
    flagged BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_retrieval_chunks_collection ON retrieval_chunks (collection_id);
CREATE INDEX IF NOT EXISTS ix_retrieval_chunks_document ON retrieval_chunks (document_id);
CREATE VIRTUAL TABLE IF NOT EXISTS retrieval_chunks_fts USING fts5(content, tokenize='trigram');
CREATE TABLE IF NOT EXISTS retrieval_chunk_vectors (
    chunk_id INTEGER PRIMARY KEY REFERENCES retrieval_chunks(id) ON DELETE CASCADE,
    collection_id INTEGER NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_retrieval_chunk_vectors_collection ON retrieval_chunk_vectors (collection_id);
"""
"""The index's own schema, created on first use (``IF NOT EXISTS``): the file is the index's alone."""


def index_path(database: str) -> str:
    """The index file beside the gateway's database: ``prism.db`` → ``prism-retrieval.db``."""
    path = Path(database)
    return str(path.with_name(f"{path.stem}-retrieval{path.suffix or '.db'}"))


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: Any = None
        self._lock = threading.Lock()
        self._error: str | None = None

    def _open(self) -> Any:
        if self._conn is None:
            import pysqlite3.dbapi2 as sqlite  # type: ignore[import-untyped]
            import sqlite_vec  # type: ignore[import-untyped]

            conn = sqlite.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            conn.enable_load_extension(True)
            sqlite_vec.load(conn)
            conn.enable_load_extension(False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(SCHEMA)
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[Any], _T]) -> _T:
        def call() -> _T:
            with self._lock:
                return fn(self._open())

        return await asyncio.to_thread(call)

    async def _tx(self, fn: Callable[[Any], _T]) -> _T:
        def body(conn: Any) -> _T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return out

        return await self._run(body)

    async def check(self) -> str | None:
        try:
            await self._run(lambda c: c.execute("SELECT vec_version()").fetchone())
        except Exception as exc:
            return f"sqlite-vec cannot be loaded: {exc}"
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
        def body(conn: Any) -> int:
            cur = conn.execute(
                "INSERT INTO retrieval_collections (name, description, embedding_model, dimensions, "
                "chunk_chars, chunk_overlap, readers, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    name,
                    description,
                    embedding_model,
                    dimensions,
                    chunk_chars,
                    chunk_overlap,
                    None if readers is None else json.dumps(readers),
                    created_by,
                    datetime.now(UTC).isoformat(),
                ),
            )
            return int(cur.fetchone()[0])

        cid = await self._tx(body)
        row = await self.get_collection(cid)
        assert row is not None
        return row

    async def list_collections(self) -> list[CollectionRow]:
        return await self._run(lambda c: [_row(r) for r in c.execute(_COLLECTION_SQL + " ORDER BY c.id")])

    async def get_collection(self, collection_id: int) -> CollectionRow | None:
        r = await self._run(
            lambda c: c.execute(_COLLECTION_SQL + " WHERE c.id = ?", (collection_id,)).fetchone()
        )
        return _row(r) if r is not None else None

    async def delete_collection(self, collection_id: int) -> bool:
        def body(conn: Any) -> bool:
            conn.execute(
                "DELETE FROM retrieval_chunks_fts WHERE rowid IN (SELECT id FROM retrieval_chunks "
                "WHERE collection_id = ?)",
                (collection_id,),
            )
            return bool(
                conn.execute("DELETE FROM retrieval_collections WHERE id = ?", (collection_id,)).rowcount
            )

        return await self._tx(body)

    async def add_document(self, doc: NewDocument) -> dict[str, Any]:
        now = datetime.now(UTC)
        flagged = sum(1 for c in doc.chunks if c.flagged)

        def body(conn: Any) -> int:
            import sqlite_vec

            doc_id = int(
                conn.execute(
                    "INSERT INTO retrieval_documents (collection_id, filename, content_type, "
                    "size_bytes, sha256, chars, "
                    "chunk_count, flagged_chunks, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, "
                    "?, ?, ?, ?) RETURNING id",
                    (
                        doc.collection_id,
                        doc.filename,
                        doc.content_type,
                        doc.size_bytes,
                        doc.sha256,
                        doc.chars,
                        len(doc.chunks),
                        flagged,
                        doc.created_by,
                        now.isoformat(),
                    ),
                ).fetchone()[0]
            )
            for ch in doc.chunks:
                chunk_id = int(
                    conn.execute(
                        "INSERT INTO retrieval_chunks (collection_id, document_id, seq, "
                        "start_offset, end_offset, "
                        "content, injection_score, flagged) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (
                            doc.collection_id,
                            doc_id,
                            ch.seq,
                            ch.start,
                            ch.end,
                            ch.content,
                            ch.injection_score,
                            ch.flagged,
                        ),
                    ).fetchone()[0]
                )
                conn.execute(
                    "INSERT INTO retrieval_chunks_fts (rowid, content) VALUES (?, ?)", (chunk_id, ch.content)
                )
                conn.execute(
                    "INSERT INTO retrieval_chunk_vectors (chunk_id, collection_id, embedding) "
                    "VALUES (?, ?, ?)",
                    (chunk_id, doc.collection_id, sqlite_vec.serialize_float32(ch.embedding)),
                )
            return doc_id

        doc_id = await self._tx(body)
        return {"id": doc_id, "chunks": len(doc.chunks), "flagged_chunks": flagged, "created_at": now}

    async def list_documents(self, collection_id: int) -> list[dict[str, Any]]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT id, filename, content_type, size_bytes, sha256, chars, chunk_count, flagged_chunks, "
                "created_by, created_at FROM retrieval_documents WHERE collection_id = ? ORDER BY id",
                (collection_id,),
            ).fetchall()
        )
        return [_document(r) for r in rows]

    async def delete_document(self, collection_id: int, document_id: int) -> bool:
        def body(conn: Any) -> bool:
            ids = [
                r[0]
                for r in conn.execute("SELECT id FROM retrieval_chunks WHERE document_id = ?", (document_id,))
            ]
            for chunk_id in ids:  # the vectors go with their chunks (foreign key, cascade)
                conn.execute("DELETE FROM retrieval_chunks_fts WHERE rowid = ?", (chunk_id,))
            return bool(
                conn.execute(
                    "DELETE FROM retrieval_documents WHERE id = ? AND collection_id = ?",
                    (document_id, collection_id),
                ).rowcount
            )

        return await self._tx(body)

    async def dense(self, collection_id: int, vector: list[float], k: int) -> list[tuple[int, float]]:
        import sqlite_vec

        blob = sqlite_vec.serialize_float32(vector)
        rows = await self._run(
            lambda c: c.execute(
                "SELECT chunk_id, vec_distance_cosine(embedding, ?) AS distance FROM retrieval_chunk_vectors "
                "WHERE collection_id = ? ORDER BY distance LIMIT ?",
                (blob, collection_id, k),
            ).fetchall()
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    async def keyword_candidates(
        self, collection_id: int, terms: list[str], limit: int
    ) -> tuple[list[tuple[int, str]], int]:
        long_terms = [t for t in terms if len(t) >= 3]
        short_terms = [t for t in terms if len(t) < 3]

        def body(conn: Any) -> tuple[list[tuple[int, str]], int]:
            total = conn.execute(
                "SELECT count(*) FROM retrieval_chunks WHERE collection_id = ?", (collection_id,)
            )
            count = int(total.fetchone()[0])
            clauses: list[str] = []
            params: list[Any] = [collection_id]
            if long_terms:  # the trigram index answers terms of three or more characters
                clauses.append(
                    "k.id IN (SELECT rowid FROM retrieval_chunks_fts WHERE retrieval_chunks_fts MATCH ?)"
                )
                params.append(" OR ".join(_fts_phrase(t) for t in long_terms))
            for term in short_terms:  # two-character terms (many Korean words): a scan of the collection
                clauses.append("k.content LIKE ? ESCAPE '\\'")
                params.append(_like(term))
            if not clauses:
                return [], count
            params.append(limit)
            rows = conn.execute(
                "SELECT k.id, k.content FROM retrieval_chunks k WHERE k.collection_id = ? "
                f"AND ({' OR '.join(clauses)}) LIMIT ?",
                params,
            ).fetchall()
            return [(int(r[0]), str(r[1])) for r in rows], count

        return await self._run(body)

    async def chunks(self, ids: list[int]) -> dict[int, ChunkHit]:
        if not ids:
            return {}
        marks = ",".join("?" for _ in ids)
        rows = await self._run(
            lambda c: c.execute(
                "SELECT k.id, k.document_id, d.filename, k.seq, k.start_offset, k.end_offset, "
                "k.content, k.flagged "
                "FROM retrieval_chunks k JOIN retrieval_documents d ON d.id = k.document_id WHERE "
                f"k.id IN ({marks})",
                ids,
            ).fetchall()
        )
        return {int(r[0]): ChunkHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows}

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)
