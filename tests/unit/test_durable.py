"""Durable flows without a server: the checkpointer choice per database URL, the pipeline builder's
refusals, the summarize pipeline's chunking, and a run on the in-memory checkpointer."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.agent.durable import (
    CheckpointerConfigError,
    Step,
    StepContext,
    build_pipeline,
    open_checkpointer,
)
from gateway.agent.durable.checkpointer import checkpointer_kind, open_checkpointers, postgres_conninfo
from gateway.config.durable import DurableConfig


def test_asyncpg_urls_become_libpq_conninfo() -> None:
    assert (
        postgres_conninfo("postgresql+asyncpg://prism:s%40cret@db:5432/prism?ssl=require&command_timeout=30")
        == "postgresql://prism:s%40cret@db:5432/prism?sslmode=require"
    )
    assert (
        postgres_conninfo("postgresql+asyncpg://postgres@127.0.0.1/x") == "postgresql://postgres@127.0.0.1/x"
    )


def test_the_checkpointer_follows_the_database() -> None:
    assert checkpointer_kind("postgresql+asyncpg://h/db") == "postgres"
    assert checkpointer_kind("sqlite+aiosqlite:///./var/prism.db") == "sqlite"
    assert checkpointer_kind("sqlite+aiosqlite://") == "memory"
    with pytest.raises(CheckpointerConfigError):
        checkpointer_kind("mysql+aiomysql://h/db")


async def test_an_in_memory_checkpointer_is_refused_in_production() -> None:
    with pytest.raises(CheckpointerConfigError, match="refused in production"):
        async with open_checkpointer(DurableConfig(database_url="sqlite+aiosqlite://", production=True)):
            pass
    async with open_checkpointer(DurableConfig(database_url="sqlite+aiosqlite://")) as saver:
        assert type(saver).__name__ == "InMemorySaver"
    async with open_checkpointers(DurableConfig(database_url="sqlite+aiosqlite://")) as savers:
        assert len(savers) == 1


def test_a_heartbeat_must_fit_twice_in_a_lease() -> None:
    with pytest.raises(ValueError, match="heartbeat"):
        DurableConfig(database_url="sqlite+aiosqlite://", lease_s=5, heartbeat_s=3)
    with pytest.raises(ValueError, match="checkpoint_shards"):
        DurableConfig(database_url="sqlite+aiosqlite://", pool_size=2, checkpoint_shards=3)


async def _step(value: Any, step: StepContext) -> Any:
    return value


def test_pipeline_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="no steps"):
        build_pipeline("empty", [])
    with pytest.raises(ValueError, match="repeats"):
        build_pipeline("twice", [Step("a", _step), Step("a", _step)])
    with pytest.raises(ValueError, match="no function"):
        build_pipeline("missing", [Step("a")])
    graph = build_pipeline("ok", [Step("a", _step), Step("check", approval=True), Step("b", _step)])
    drawn = graph.builder.compile().get_graph().draw_mermaid()
    assert "check" in drawn and "rejected" in drawn


