"""Audio seconds per transcription (docs/audio.md): the daily audio quota counts from here.

Revision ID: 0016_audio_usage
Revises: 0015_shadow_routing_signals
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_audio_usage"
down_revision = "0015_shadow_routing_signals"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audio_usage",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(36)),
        sa.Column("api_key_id", sa.String(36)),
        sa.Column("model", sa.String(128)),
        sa.Column("seconds", sa.Float(), nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"),
        sa.Column("job_id", sa.String(32)),
        sa.Column("created_at", _TZ, nullable=False),
    )
    op.create_index("ix_audio_usage_key_created", "audio_usage", ["api_key_id", "created_at"])
    op.create_index("ix_audio_usage_user_created", "audio_usage", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("audio_usage")
