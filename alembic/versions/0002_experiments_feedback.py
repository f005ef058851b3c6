"""Experiments (issue #5): shadow_results gains alias, streamed and primary_error; feedback table.

Revision ID: 0002_experiments_feedback
Revises: 0001_initial
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_experiments_feedback"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("shadow_results") as batch:
        batch.add_column(sa.Column("alias", sa.String(128)))
        batch.add_column(sa.Column("streamed", sa.Boolean()))
        batch.add_column(sa.Column("primary_error", sa.String(256)))
        batch.create_index("ix_shadow_results_alias", ["alias"])
    op.create_table(
        "feedback",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(32)),
        sa.Column("experiment", sa.String(64)),
        sa.Column("arm", sa.String(64)),
        sa.Column("model", sa.String(128)),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("thumb", sa.String(8)),
        sa.Column("comment", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])
    op.create_index("ix_feedback_experiment_arm", "feedback", ["experiment", "arm"])


def downgrade() -> None:
    op.drop_index("ix_feedback_experiment_arm", table_name="feedback")
    op.drop_index("ix_feedback_request_id", table_name="feedback")
    op.drop_table("feedback")
    with op.batch_alter_table("shadow_results") as batch:
        batch.drop_index("ix_shadow_results_alias")
        batch.drop_column("primary_error")
        batch.drop_column("streamed")
        batch.drop_column("alias")
