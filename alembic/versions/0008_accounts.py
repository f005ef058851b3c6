"""Accounts: security-related columns (issue #18).

Revision ID: 0008_accounts
Revises: 0007_feedback_reports
Create Date: 2026-12-07
"""

from __future__ import annotations

revision = "0008_accounts"
down_revision = "0007_feedback_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
