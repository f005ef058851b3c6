"""usage_logs.route: 64 → 255 characters (a smart route's label, e.g. ``auto → intent=…,confidence=…,
tier=… → model``, outgrew 64 and the database refused the whole batch).

Revision ID: 0005_usage_route_width
Revises: 0004_shadow_judge
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_usage_route_width"
down_revision = "0004_shadow_judge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite does not enforce VARCHAR lengths
    op.alter_column("usage_logs", "route", type_=sa.String(255), existing_type=sa.String(64))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("UPDATE usage_logs SET route = left(route, 64) WHERE length(route) > 64")
    op.alter_column("usage_logs", "route", type_=sa.String(64), existing_type=sa.String(255))
