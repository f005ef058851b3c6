"""Usage ledger: client request id column, quarantine table (issue #17).

Revision ID: 0006_ledger
Revises: 0005_usage_route_width
Create Date: 2026-12-07
"""

from __future__ import annotations

revision = "0006_ledger"
down_revision = "0005_usage_route_width"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
