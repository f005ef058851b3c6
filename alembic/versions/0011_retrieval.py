"""Retrieval over the operator's documents: collections, documents, chunks (issue #22, item 3).

Postgres: enables ``vector`` (pgvector) and ``pg_trgm`` when the server has them, and indexes chunk
text with a GIN trigram index. Each collection's vector table (``retrieval_vec_<id>``, sized to its
embedding model) is created by the service with the collection, not here. A server without
pgvector still migrates (the rest of Prism works); retrieval then answers 503 saying why.
SQLite: nothing here. The embedded index (sqlite-vec, FTS5) keeps its tables in a file of its own
beside the gateway's database, created by ``gateway/retrieval/store_sqlite.py`` (two SQLite
libraries in one process must not share a file).

Revision ID: 0011_retrieval
Revises: 0010_tool_loop
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0011_retrieval"
down_revision = "0010_tool_loop"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger()


def _available(name: str) -> bool:
    bind = op.get_bind()
    row = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = :n"), {"n": name}).first()
    return row is not None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "postgresql":
        return
    op.create_table(
        "retrieval_collections",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("embedding_model", sa.String(128), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("chunk_chars", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("readers", sa.JSON()),
        sa.Column("created_by", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "retrieval_documents",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "collection_id", ID, sa.ForeignKey("retrieval_collections.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("flagged_chunks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_by", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_retrieval_documents_collection", "retrieval_documents", ["collection_id"])
    op.create_table(
        "retrieval_chunks",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "collection_id", ID, sa.ForeignKey("retrieval_collections.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "document_id", ID, sa.ForeignKey("retrieval_documents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("start_offset", sa.Integer(), nullable=False),
        sa.Column("end_offset", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("injection_score", sa.Float(), nullable=False, server_default="0"),
        sa.Column("flagged", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_retrieval_chunks_collection", "retrieval_chunks", ["collection_id"])
    op.create_index("ix_retrieval_chunks_document", "retrieval_chunks", ["document_id"])
    for ext in ("vector", "pg_trgm"):
        if _available(ext):
            op.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
    if _available("pg_trgm"):
        op.execute(
            "CREATE INDEX ix_retrieval_chunks_trgm ON retrieval_chunks USING gin (content gin_trgm_ops)"
        )


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect != "postgresql":
        return
    tables = bind.execute(
        sa.text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'retrieval\\_vec\\_%'")
    ).scalars()
    for table in list(tables):
        op.execute(f'DROP TABLE IF EXISTS "{table}"')
    op.drop_table("retrieval_chunks")
    op.drop_table("retrieval_documents")
    op.drop_table("retrieval_collections")
