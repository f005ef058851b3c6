"""Initial schema: users, refresh tokens, API keys, conversations, messages, usage logs, shadow results.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("family_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.String(32), sa.ForeignKey("refresh_tokens.id", ondelete="SET NULL")),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("absolute_expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
        sa.Column("revoked_at", TS),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
    )
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("allowed_models", sa.JSON(), nullable=False),
        sa.Column("rpm_limit", sa.Integer()),
        sa.Column("tpm_limit", sa.Integer()),
        sa.Column("last_used_at", TS),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(256)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_conversations_user_updated", "conversations", ["user_id", "updated_at"])
    op.create_table(
        "messages",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id", sa.String(64), sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("name", sa.String(128)),
        sa.Column("model", sa.String(128)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_messages_conversation_seq", "messages", ["conversation_id", "seq"])
    op.create_table(
        "usage_logs",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("user_id", sa.String(32)),
        sa.Column("api_key_id", sa.String(32)),
        sa.Column("tier", sa.String(32)),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("model_requested", sa.String(128)),
        sa.Column("model_served", sa.String(128)),
        sa.Column("provider", sa.String(64)),
        sa.Column("intent", sa.String(64)),
        sa.Column("routing_tier", sa.String(64)),
        sa.Column("experiment", sa.String(64)),
        sa.Column("arm", sa.String(64)),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.String(64)),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("fallback_used", sa.Boolean(), nullable=False),
        sa.Column("guard_flags", sa.String(256)),
        sa.Column("conversation_id", sa.String(64)),
    )
    op.create_index("ix_usage_created", "usage_logs", ["created_at"])
    op.create_index("ix_usage_user_created", "usage_logs", ["user_id", "created_at"])
    op.create_index("ix_usage_model_created", "usage_logs", ["model_served", "created_at"])
    op.create_index("ix_usage_key_created", "usage_logs", ["api_key_id", "created_at"])
    op.create_table(
        "shadow_results",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("pair_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("primary_model", sa.String(128), nullable=False),
        sa.Column("shadow_model", sa.String(128), nullable=False),
        sa.Column("primary_latency_ms", sa.Float()),
        sa.Column("shadow_latency_ms", sa.Float()),
        sa.Column("primary_ttft_ms", sa.Float()),
        sa.Column("shadow_ttft_ms", sa.Float()),
        sa.Column("primary_prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("primary_completion_tokens", sa.Integer(), nullable=False),
        sa.Column("shadow_prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("shadow_completion_tokens", sa.Integer(), nullable=False),
        sa.Column("primary_cost_usd", sa.Float(), nullable=False),
        sa.Column("shadow_cost_usd", sa.Float(), nullable=False),
        sa.Column("shadow_error", sa.String(256)),
        sa.Column("agreement", sa.Float()),
        sa.UniqueConstraint("pair_id", name="uq_shadow_results_pair_id"),
    )
    op.create_index("ix_shadow_results_request_id", "shadow_results", ["request_id"])
    op.create_index("ix_shadow_models_created", "shadow_results", ["primary_model", "shadow_model", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_shadow_models_created", table_name="shadow_results")
    op.drop_index("ix_shadow_results_request_id", table_name="shadow_results")
    op.drop_table("shadow_results")
    for name in ("ix_usage_key_created", "ix_usage_model_created", "ix_usage_user_created", "ix_usage_created"):
        op.drop_index(name, table_name="usage_logs")
    op.drop_table("usage_logs")
    op.drop_index("ix_messages_conversation_seq", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_conversations_user_updated", table_name="conversations")
    op.drop_table("conversations")
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_user_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_table("users")
