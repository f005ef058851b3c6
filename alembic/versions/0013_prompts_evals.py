"""Prompt registry, applications, datasets and evaluation runs (issue #24); usage records name the
application, prompt version and traffic kind.

Revision ID: 0013_prompts_evals
Revises: 0012_jobs
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_prompts_evals"
down_revision = "0012_jobs"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("usage_logs") as batch:
        batch.add_column(sa.Column("application", sa.String(64), nullable=True))
        batch.add_column(sa.Column("prompt_version_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("traffic", sa.String(16), nullable=True))
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text()),
        sa.Column("owner_id", sa.String(32), index=True),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "prompt_id", sa.String(32), sa.ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("author_id", sa.String(32)),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.UniqueConstraint("prompt_id", "number", name="uq_prompt_versions_number"),
    )
    op.create_index(
        "uq_prompt_versions_active",
        "prompt_versions",
        ["prompt_id"],
        unique=True,
        postgresql_where=sa.text("is_active"),
        sqlite_where=sa.text("is_active"),
    )
    op.create_table(
        "prompt_activations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "prompt_id", sa.String(32), sa.ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("previous_version_id", sa.String(32)),
        sa.Column("actor_id", sa.String(32)),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_index("ix_prompt_activations_prompt_id", "prompt_activations", ["prompt_id"])
    op.create_table(
        "applications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text()),
        sa.Column("owner_id", sa.String(32), index=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column(
            "prompt_id", sa.String(32), sa.ForeignKey("prompts.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("pinned_version_id", sa.String(32)),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("owner_id", sa.String(32), index=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
    )
    op.create_table(
        "dataset_cases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("input", sa.Text()),
        sa.Column("vars", sa.JSON(), nullable=False),
        sa.Column("expected", sa.Text()),
        sa.Column("assertions", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("version_added", sa.Integer(), nullable=False),
        sa.Column("version_removed", sa.Integer()),
    )
    op.create_index("ix_dataset_cases_dataset", "dataset_cases", ["dataset_id", "version_added"])
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128)),
        sa.Column("owner_id", sa.String(32), index=True),
        sa.Column("dataset_id", sa.String(32)),
        sa.Column("dataset_version", sa.Integer()),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("lease_until", _TZ),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("started_at", _TZ),
        sa.Column("finished_at", _TZ),
    )
    op.create_index("ix_eval_runs_status", "eval_runs", ["status"])
    op.create_table(
        "eval_results",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("model_served", sa.String(128)),
        sa.Column("output", sa.Text()),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("assertions", sa.JSON(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.UniqueConstraint("run_id", "variant", "case_id", name="uq_eval_results_pair"),
    )
    op.create_index("ix_eval_results_run_id", "eval_results", ["run_id"])


def downgrade() -> None:
    for table in (
        "eval_results",
        "eval_runs",
        "dataset_cases",
        "datasets",
        "applications",
        "prompt_activations",
        "prompt_versions",
        "prompts",
    ):
        op.drop_table(table)
    with op.batch_alter_table("usage_logs") as batch:
        batch.drop_column("traffic")
        batch.drop_column("prompt_version_id")
        batch.drop_column("application")
