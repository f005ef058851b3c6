"""Shadow judge (issue #5): shadow_judgements, a judge model's 1-10 scores for sampled shadow pairs.

Revision ID: 0004_shadow_judge
Revises: 0003_routing_policy
Create Date: 2025-01-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_shadow_judge"
down_revision = "0003_routing_policy"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "shadow_judgements",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("pair_id", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("shadow_model", sa.String(128), nullable=False),
        sa.Column("judge_model", sa.String(128), nullable=False),
        sa.Column("primary_score", sa.Integer()),
        sa.Column("shadow_score", sa.Integer()),
        sa.Column("winner", sa.String(16)),
        sa.Column("shadow_position", sa.String(1), nullable=False),
        sa.Column("error", sa.String(64)),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.UniqueConstraint("pair_id", name="uq_shadow_judgements_pair_id"),
    )
    op.create_index("ix_shadow_judgements_alias", "shadow_judgements", ["alias"])


def downgrade() -> None:
    op.drop_index("ix_shadow_judgements_alias", table_name="shadow_judgements")
    op.drop_table("shadow_judgements")
