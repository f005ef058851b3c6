"""Routing policy (issue #6): the highest routing tier ``model: "auto"`` may pick, per API key and per user.

``NULL`` means no cap. Names a tier of the routing config (``cheap``, ``strong``, ...).

Revision ID: 0003_routing_policy
Revises: 0002_experiments_feedback
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_routing_policy"
down_revision = "0002_experiments_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("max_route_tier", sa.String(32), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("max_route_tier", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("max_route_tier")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("max_route_tier")
