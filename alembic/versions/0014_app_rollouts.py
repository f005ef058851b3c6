"""Applications carry a live rollout (a weighted split between prompt versions or models, and a
shadow of a candidate version), audited; usage records name the rollout arm served; evaluation
runs name the job that executes them on the task queue (issue #24, item 7 and the jobs queue).

Revision ID: 0014_app_rollouts
Revises: 0013_prompts_evals
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_app_rollouts"
down_revision = "0013_prompts_evals"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("usage_logs") as batch:
        batch.add_column(sa.Column("app_arm", sa.String(64), nullable=True))
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("rollout", sa.JSON(), nullable=True))
    with op.batch_alter_table("eval_runs") as batch:
        batch.add_column(sa.Column("job_id", sa.String(32), nullable=True))
    op.create_table(
        "application_rollout_events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "application_id",
            sa.String(32),
            sa.ForeignKey("applications.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("arm", sa.String(64), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("actor_id", sa.String(32), nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("application_rollout_events")
    with op.batch_alter_table("eval_runs") as batch:
        batch.drop_column("job_id")
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("rollout")
    with op.batch_alter_table("usage_logs") as batch:
        batch.drop_column("app_arm")
