"""Feedback: one rating per request and user; experiment runs (issue #26).

* ``feedback``: duplicates of (request_id, user_id) left by earlier versions are removed (the
  newest rating is kept: that is the one an upsert would have left), then a unique index makes
  a second rating an update; ``updated_at`` says when it last changed.
* ``experiment_runs``: one row per (re)start of an experiment's measurement, made by
  ``POST /admin/experiments/{name}/reset``; reports cover the rows since the latest run.

Revision ID: 0007_feedback_reports
Revises: 0006_ledger
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_feedback_reports"
down_revision = "0006_ledger"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # GROUP BY puts NULL user ids (an anonymous gateway) in one group on Postgres and SQLite alike.
    op.execute(
        "DELETE FROM feedback WHERE id NOT IN "
        "(SELECT keep FROM (SELECT MAX(id) AS keep FROM feedback GROUP BY request_id, user_id) AS newest)"
    )
    op.add_column("feedback", sa.Column("updated_at", TS))
    op.create_index("uq_feedback_request_user", "feedback", ["request_id", "user_id"], unique=True)
    op.create_table(
        "experiment_runs",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("experiment", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("started_by", sa.String(32)),
        sa.Column("reason", sa.String(256)),
    )
    op.create_index("ix_experiment_runs_experiment_started", "experiment_runs", ["experiment", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_experiment_runs_experiment_started", table_name="experiment_runs")
    op.drop_table("experiment_runs")
    op.drop_index("uq_feedback_request_user", table_name="feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("updated_at")
