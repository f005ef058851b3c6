"""Usage ledger: the client's own request id beside the server-minted key, and a quarantine table for
records the database refuses (issue #17).

Revision ID: 0006_ledger
Revises: 0005_usage_route_width
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_ledger"
down_revision = "0005_usage_route_width"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_logs") as batch:
        batch.add_column(sa.Column("client_request_id", sa.String(128), nullable=True))
    op.create_index("ix_usage_client_request", "usage_logs", ["client_request_id"])
    op.create_table(
        "usage_quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_usage_quarantine_request_id", "usage_quarantine", ["request_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_usage_quarantine_request_id", table_name="usage_quarantine")
    op.drop_table("usage_quarantine")
    op.drop_index("ix_usage_client_request", table_name="usage_logs")
    with op.batch_alter_table("usage_logs") as batch:
        batch.drop_column("client_request_id")
