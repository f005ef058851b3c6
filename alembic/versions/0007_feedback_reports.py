"""Feedback: one rating per request and user; experiment runs (issue #26).

Revision ID: 0007_feedback_reports
Revises: 0006_ledger
Create Date: 2026-12-07
"""

from __future__ import annotations

revision = "0007_feedback_reports"
down_revision = "0006_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
