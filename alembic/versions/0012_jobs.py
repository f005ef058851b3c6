"""Asynchronous jobs (issue #23): one row per job, also its lease (docs/jobs.md).

Revision ID: 0012_jobs
Revises: 0011_retrieval
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0012_jobs"
down_revision = "0011_retrieval"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(36)),
        sa.Column("api_key_id", sa.String(36)),
        sa.Column("tier", sa.String(32)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("file_path", sa.Text()),
        sa.Column("file_name", sa.String(255)),
        sa.Column("content_type", sa.String(64)),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("pages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("webhook_url", sa.Text()),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON()),
        sa.Column("error", sa.JSON()),
        sa.Column("tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("owner", sa.String(128)),
        sa.Column("lease_token", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_expires_at", TS),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_jobs_user_created", "jobs", ["user_id", "created_at"])
    op.create_index("ix_jobs_status_lease", "jobs", ["status", "lease_expires_at"])
    op.create_index("ux_jobs_idempotency", "jobs", ["user_id", "idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_jobs_idempotency", table_name="jobs")
    op.drop_index("ix_jobs_status_lease", table_name="jobs")
    op.drop_index("ix_jobs_user_created", table_name="jobs")
    op.drop_table("jobs")
