"""Stored Responses API answers (``store: true``; ``previous_response_id``; issue #20).

Revision ID: 0008_responses
Revises: 0007_feedback_reports
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_responses"
down_revision = "0007_feedback_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(32)),
        sa.Column("api_key_id", sa.String(32)),
        sa.Column("chain_id", sa.String(64), nullable=False),
        sa.Column("previous_response_id", sa.String(64)),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("input_items", sa.JSON(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
    )
    op.create_index("ix_responses_user_created", "responses", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_user_created", table_name="responses")
    op.drop_table("responses")
