"""Durable flow runs: one lease row per run of a checkpointed LangGraph flow (issue #19, item 4).

The checkpoints themselves are in the tables of ``langgraph-checkpoint-postgres`` (or ``-sqlite``),
created by the checkpointer's own ``setup()`` under an advisory lock (``gateway/agent/durable``).

Revision ID: 0009_durable_runs
Revises: 0008_responses
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0009_durable_runs"
down_revision = "0008_responses"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "durable_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("graph", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("owner", sa.String(128)),
        sa.Column("lease_token", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_expires_at", TS),
        sa.Column("claims", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_durable_runs_status_lease", "durable_runs", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_durable_runs_status_lease", table_name="durable_runs")
    op.drop_table("durable_runs")
