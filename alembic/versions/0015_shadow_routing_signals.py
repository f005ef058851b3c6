"""shadow_results: the primary request's intent, language, complexity and confidence (issue #21), so
``make calibrate-routing`` can propose per-intent, per-language cheap-tier thresholds from the recorded
pairs and their judge scores. Nullable: rows written before, and requests that were not classified.

Revision ID: 0015_shadow_routing_signals
Revises: 0014_app_rollouts
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_shadow_routing_signals"
down_revision = "0014_app_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shadow_results") as batch:
        batch.add_column(sa.Column("intent", sa.String(64), nullable=True))
        batch.add_column(sa.Column("language", sa.String(8), nullable=True))
        batch.add_column(sa.Column("complexity", sa.Float(), nullable=True))
        batch.add_column(sa.Column("confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shadow_results") as batch:
        for column in ("confidence", "complexity", "language", "intent"):
            batch.drop_column(column)
