"""Typed SQLAlchemy models. The Alembic revisions in ``alembic/versions`` are the schema of record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="user")
    tier: Mapped[str] = mapped_column(String(32), default="free")
    max_route_tier: Mapped[str | None] = mapped_column(String(32), default=None)
    allowed_tools: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Server tools this user may use (empty: any the route offers); docs/tools.md."""
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("refresh_tokens.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    absolute_expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    allowed_models: Mapped[list[str]] = mapped_column(JSON, default=list)
    rpm_limit: Mapped[int | None] = mapped_column(default=None)
    tpm_limit: Mapped[int | None] = mapped_column(default=None)
    max_route_tier: Mapped[str | None] = mapped_column(String(32), default=None)
    allowed_tools: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Server tools this key may use (empty: any the route offers); docs/tools.md."""
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(lazy="raise")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(256), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_seq", "conversation_id", "seq"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(128), default=None)
    model: Mapped[str | None] = mapped_column(String(128), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageLog(Base):
    """One row per /v1 request; ``request_id`` makes writes idempotent. No FKs: logs outlive users."""

    __tablename__ = "usage_logs"
    __table_args__ = (
        Index("ix_usage_created", "created_at"),
        Index("ix_usage_user_created", "user_id", "created_at"),
        Index("ix_usage_model_created", "model_served", "created_at"),
        Index("ix_usage_key_created", "api_key_id", "created_at"),
        Index("ix_usage_client_request", "client_request_id"),
    )

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime]
    user_id: Mapped[str | None] = mapped_column(String(32))
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    tier: Mapped[str | None] = mapped_column(String(32))
    route: Mapped[str] = mapped_column(String(255))
    model_requested: Mapped[str | None] = mapped_column(String(128))
    model_served: Mapped[str | None] = mapped_column(String(128))
    provider: Mapped[str | None] = mapped_column(String(64))
    intent: Mapped[str | None] = mapped_column(String(64))
    routing_tier: Mapped[str | None] = mapped_column(String(64))
    experiment: Mapped[str | None] = mapped_column(String(64))
    arm: Mapped[str | None] = mapped_column(String(64))
    cache_hit: Mapped[bool] = mapped_column(Boolean)
    streamed: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    reasoning_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    fallback_used: Mapped[bool] = mapped_column(Boolean)
    guard_flags: Mapped[str | None] = mapped_column(String(256))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    application: Mapped[str | None] = mapped_column(String(64), default=None)
    prompt_version_id: Mapped[str | None] = mapped_column(String(32), default=None)
    traffic: Mapped[str | None] = mapped_column(String(16), default=None)
    """``evaluation`` for an evaluation run's calls (excluded from product dashboards); else null."""
    app_arm: Mapped[str | None] = mapped_column(String(64), default=None)
    """The arm of the application's live rollout that served the request (migration 0014)."""
    tool_rounds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tool_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ToolCallAudit(Base):
    """One row per server tool call the tool loop ran (docs/tools.md, "Audit"). Arguments and
    results are stored only with ``tools.loop.store_payloads``; their sizes always."""

    __tablename__ = "tool_calls"
    __table_args__ = (
        Index("ix_tool_calls_created", "created_at"),
        Index("ix_tool_calls_request", "request_id"),
        Index("ix_tool_calls_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    request_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(64))
    tool: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    api_key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    status: Mapped[str] = mapped_column(String(32))
    guard: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[float] = mapped_column(Float)
    argument_bytes: Mapped[int] = mapped_column(Integer)
    result_bytes: Mapped[int] = mapped_column(Integer)
    arguments: Mapped[str | None] = mapped_column(Text, default=None)
    result: Mapped[str | None] = mapped_column(Text, default=None)


class UsageQuarantine(Base):
    """Usage records the database refused (or validation caught), kept with the reason instead of
    blocking the records around them (``gateway/usage/recorder.py``). ``payload`` is the record as
    ASCII-escaped JSON, so any text survives; replaying one after a fix is an operator's decision."""

    __tablename__ = "usage_quarantine"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShadowResult(Base):
    """Primary vs shadow model comparison; filled by the shadow-traffic issue."""

    __tablename__ = "shadow_results"
    __table_args__ = (Index("ix_shadow_models_created", "primary_model", "shadow_model", "created_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    pair_id: Mapped[str] = mapped_column(String(64), unique=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    primary_model: Mapped[str] = mapped_column(String(128))
    shadow_model: Mapped[str] = mapped_column(String(128))
    primary_latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    shadow_latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    primary_ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)
    shadow_ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)
    primary_prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    primary_completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    shadow_prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    shadow_completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    primary_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    shadow_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    shadow_error: Mapped[str | None] = mapped_column(String(256), default=None)
    agreement: Mapped[float | None] = mapped_column(Float, default=None)
    alias: Mapped[str | None] = mapped_column(String(128), default=None, index=True)
    streamed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    primary_error: Mapped[str | None] = mapped_column(String(256), default=None)
    intent: Mapped[str | None] = mapped_column(String(64), default=None)
    """The classifier's label of the request (migration 0014; None when it was not classified)."""
    language: Mapped[str | None] = mapped_column(String(8), default=None)
    complexity: Mapped[float | None] = mapped_column(Float, default=None)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)


class Feedback(Base):
    """A caller's rating of one answer, tied to the experiment arm that gave it (migration 0002)."""

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_experiment_arm", "experiment", "arm"),
        Index("uq_feedback_request_user", "request_id", "user_id", unique=True),  # migration 0007
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    experiment: Mapped[str | None] = mapped_column(String(64), default=None)
    arm: Mapped[str | None] = mapped_column(String(64), default=None)
    model: Mapped[str | None] = mapped_column(String(128), default=None)
    score: Mapped[float] = mapped_column(Float)
    thumb: Mapped[str | None] = mapped_column(String(8), default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=None)
    """When the rating was last changed (one rating per request and user; migration 0007)."""


class ShadowJudgement(Base):
    """A judge model's scores (1-10) for the two answers of one shadow pair (migration 0004)."""

    __tablename__ = "shadow_judgements"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    pair_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    alias: Mapped[str] = mapped_column(String(128), index=True)
    shadow_model: Mapped[str] = mapped_column(String(128))
    judge_model: Mapped[str] = mapped_column(String(128))
    primary_score: Mapped[int | None] = mapped_column(Integer, default=None)
    shadow_score: Mapped[int | None] = mapped_column(Integer, default=None)
    winner: Mapped[str | None] = mapped_column(String(16), default=None)
    """``shadow``, ``primary`` or ``tie``; None when the call failed."""
    shadow_position: Mapped[str] = mapped_column(String(1))
    """Where the shadow's answer was shown to the judge: ``a`` or ``b``."""
    error: Mapped[str | None] = mapped_column(String(64), default=None)
    latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)


class ExperimentRun(Base):
    """One (re)start of an experiment's measurement; reports cover the rows since the latest run
    (``POST /admin/experiments/{name}/reset``, migration 0007)."""

    __tablename__ = "experiment_runs"
    __table_args__ = (Index("ix_experiment_runs_experiment_started", "experiment", "started_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    experiment: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by: Mapped[str | None] = mapped_column(String(32), default=None)
    reason: Mapped[str | None] = mapped_column(String(256), default=None)


class StoredResponse(Base):
    """A Responses API answer kept for ``GET /v1/responses/{id}`` and ``previous_response_id``
    (``store: true``, migration 0008). ``history`` is the chat transcript through this response's
    output (without ``instructions``), what a continuation replays; ``user_id`` owns it (NULL: the
    anonymous principal of a gateway without authentication)."""

    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    api_key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    chain_id: Mapped[str] = mapped_column(String(64))
    previous_response_id: Mapped[str | None] = mapped_column(String(64), default=None)
    model: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    input_items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class DurableRun(Base):
    """One run of a durable flow (LangGraph with a checkpointer; ``gateway/agent/durable``). The
    graph's state lives in the checkpointer's tables under ``thread_id = run_id``; this row is the
    run's lease: which worker owns it until when, and a fencing ``lease_token`` that every claim
    increments, so a worker that lost its lease can neither renew it nor finish the run."""

    __tablename__ = "durable_runs"
    __table_args__ = (Index("ix_durable_runs_status_lease", "status", "lease_expires_at"),)

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    graph: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    """``running`` (owned, or orphaned once its lease expires), ``interrupted`` (waits for a resume),
    ``succeeded``, ``failed``."""
    input: Mapped[Any] = mapped_column(JSON)
    result: Mapped[Any | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    claims: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Job(Base):
    """An asynchronous job (``/v1/jobs``, docs/jobs.md): the uploaded file lives on disk under
    ``GATEWAY_JOBS_STORAGE_DIR`` (``file_path``), never in the broker message. The row is also the
    job's lease, like ``durable_runs``: ``lease_token`` fences a worker that lost it, so the
    outcome is written once."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_user_created", "user_id", "created_at"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        Index("ux_jobs_idempotency", "user_id", "idempotency_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    """``queued``, ``running``, ``succeeded``, ``failed``, ``cancelled``."""
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    api_key_id: Mapped[str | None] = mapped_column(String(36), default=None)
    tier: Mapped[str | None] = mapped_column(String(32), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    file_path: Mapped[str | None] = mapped_column(Text, default=None)
    file_name: Mapped[str | None] = mapped_column(String(255), default=None)
    content_type: Mapped[str | None] = mapped_column(String(64), default=None)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    options: Mapped[Any] = mapped_column(JSON, default=dict)
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    progress: Mapped[Any] = mapped_column(JSON, default=dict)
    result: Mapped[Any | None] = mapped_column(JSON, default=None)
    error: Mapped[Any | None] = mapped_column(JSON, default=None)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class AudioUsage(Base):
    """Audio seconds transcribed (docs/audio.md): one row per synchronous transcription or
    ``transcription`` job, written when it is admitted, so the daily audio quota
    (``GATEWAY_AUDIO_SECONDS_PER_DAY``) is counted from here by every replica. The request's usage
    record (``usage_logs``, same ``request_id``) carries its cost and latency."""

    __tablename__ = "audio_usage"
    __table_args__ = (
        Index("ix_audio_usage_key_created", "api_key_id", "created_at"),
        Index("ix_audio_usage_user_created", "user_id", "created_at"),
    )

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    api_key_id: Mapped[str | None] = mapped_column(String(36), default=None)
    model: Mapped[str | None] = mapped_column(String(128), default=None)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


from gateway.db import llmops as llmops  # noqa: E402  (its tables join this metadata)
