"""Tables of the LLMOps harness (issue #24): prompts and their versions, applications, datasets and
their cases, evaluation runs and their results. Imported by ``models.py`` so that one metadata holds
every table; the Alembic revision ``0013_prompts_evals`` is the schema of record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.models import Base, new_id, utcnow


class Prompt(Base):
    __tablename__ = "prompts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    owner_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PromptVersion(Base):
    """Immutable once written. At most one active version per prompt (a partial unique index)."""

    __tablename__ = "prompt_versions"
    __table_args__ = (
        UniqueConstraint("prompt_id", "number", name="uq_prompt_versions_number"),
        Index(
            "uq_prompt_versions_active",
            "prompt_id",
            unique=True,
            postgresql_where=text("is_active"),
            sqlite_where=text("is_active"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    variables: Mapped[list[str]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    author_id: Mapped[str | None] = mapped_column(String(32), default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PromptActivation(Base):
    """The audit trail of activations: who switched which version on, and from what."""

    __tablename__ = "prompt_activations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[str] = mapped_column(String(32))
    previous_version_id: Mapped[str | None] = mapped_column(String(32), default=None)
    actor_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Application(Base):
    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    owner_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    model: Mapped[str] = mapped_column(String(128))
    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="RESTRICT"))
    pinned_version_id: Mapped[str | None] = mapped_column(String(32), default=None)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    rollout: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """The live split (weighted arms, sticky) and/or shadow of a candidate version (migration 0014)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ApplicationRolloutEvent(Base):
    """The audit trail of an application's rollout: set, promote, rollback — who, when, from what."""

    __tablename__ = "application_rollout_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    arm: Mapped[str | None] = mapped_column(String(64), default=None)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    actor_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    owner_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    tags: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DatasetCase(Base):
    """A case belongs to dataset versions ``[version_added, version_removed)``: edits never rewrite
    a case a run has used, they retire it and add its successor."""

    __tablename__ = "dataset_cases"
    __table_args__ = (Index("ix_dataset_cases_dataset", "dataset_id", "version_added"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    input: Mapped[str | None] = mapped_column(Text, default=None)
    vars: Mapped[dict[str, Any]] = mapped_column(JSON)
    expected: Mapped[str | None] = mapped_column(Text, default=None)
    assertions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    version_added: Mapped[int] = mapped_column(Integer)
    version_removed: Mapped[int | None] = mapped_column(Integer, default=None)


class EvalRun(Base):
    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_status", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(128), default=None)
    owner_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    dataset_id: Mapped[str | None] = mapped_column(String(32), default=None)
    dataset_version: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(24))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    spent_usd: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    """The ``evaluation`` job that executes the run on the task queue (a broker is configured);
    null: the in-process evaluation worker claims it."""
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class EvalResult(Base):
    """One (variant, case) of a run: the answer, and each assertion's verdict in ``assertions``."""

    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("run_id", "variant", "case_id", name="uq_eval_results_pair"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True)
    variant: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    model_served: Mapped[str | None] = mapped_column(String(128), default=None)
    output: Mapped[str | None] = mapped_column(Text, default=None)
    passed: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    assertions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
