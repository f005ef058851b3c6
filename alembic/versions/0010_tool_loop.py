"""The tool loop: per-key and per-user tool allow-lists, tool rounds in the usage log, and the
``tool_calls`` audit table (issue #22, item 1; docs/tools.md).

Revision ID: 0010_tool_loop
Revises: 0009_durable_runs
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0010_tool_loop"
down_revision = "0009_durable_runs"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    for table in ("api_keys", "users"):
        op.add_column(
            table, sa.Column("allowed_tools", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    op.add_column("usage_logs", sa.Column("tool_rounds", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("usage_logs", sa.Column("tool_calls", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "tool_calls",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(32)),
        sa.Column("api_key_id", sa.String(32)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("guard", sa.String(16), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("argument_bytes", sa.Integer(), nullable=False),
        sa.Column("result_bytes", sa.Integer(), nullable=False),
        sa.Column("arguments", sa.Text()),
        sa.Column("result", sa.Text()),
    )
    op.create_index("ix_tool_calls_created", "tool_calls", ["created_at"])
    op.create_index("ix_tool_calls_request", "tool_calls", ["request_id"])
    op.create_index("ix_tool_calls_user_created", "tool_calls", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("tool_calls")
    op.drop_column("usage_logs", "tool_calls")
    op.drop_column("usage_logs", "tool_rounds")
    for table in ("users", "api_keys"):
        op.drop_column(table, "allowed_tools")
