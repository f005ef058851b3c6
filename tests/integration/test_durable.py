"""Durable flows on real Postgres (and the embedded SQLite): a worker SIGKILLed mid-run and another
worker finishing the run from its checkpoint, exactly once; two workers racing for the same
orphans; interrupt → resume; node events; retries; the checkpointer's setup under concurrency."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from langgraph.checkpoint.postgres.base import MIGRATIONS
from prometheus_client import REGISTRY

from gateway.agent.durable import (
    DurableRuntime,
    RunInfo,
    RunNotResumable,
    Step,
    StepContext,
    build_pipeline,
    open_checkpointer,
    open_runtime,
)
from gateway.agent.durable.checkpointer import open_checkpointers
from gateway.config.durable import DurableConfig
from gateway.config.settings import Settings, get_settings
from gateway.db.engine import create_engine
from gateway.db.repositories import durable_runs as runs
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.db_fixtures import create_database, drop_database, postgres_available
from tests.support.durable_graphs import asyncpg_dsn, counted_pipeline, create_tables
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def durable_settings(url: str, worker: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "env": "test",
        "durable_worker_id": worker,
        "durable_lease_s": 2.0,
        "durable_heartbeat_s": 0.5,
        "durable_recovery_scan_s": 0.2,
    }
    values.update(overrides)
    return get_settings(**values)


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def attempts(url: str, run_id: str) -> dict[str, int]:
    rows = await fetch(
        url, "SELECT step, count(*) AS n FROM durable_attempts WHERE run_id = $1 GROUP BY step", run_id
    )
    return {row["step"]: row["n"] for row in rows}


async def effects(url: str, run_id: str) -> list[str]:
    rows = await fetch(url, "SELECT key FROM durable_effects WHERE key LIKE $1 ORDER BY key", f"{run_id}:%")
    return [row["key"] for row in rows]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def counted_db(pg_url: str) -> AsyncIterator[str]:
    await create_tables(pg_url)
    yield pg_url


async def test_a_killed_workers_run_is_finished_by_another_exactly_once(counted_db: str) -> None:
    url = counted_db
    run_id = f"kill-{uuid.uuid4().hex[:8]}"
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.durable_worker",
        url,
        run_id,
        "--hang-at",
        "s3",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await eventually(
            lambda: _step_started(url, run_id, "s3"), "worker A reached step s3", within_s=60, poll_s=0.05
        )
        worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert await attempts(url, run_id) == {"s1": 1, "s2": 1, "s3": 1}
    resumed_before = metric("prism_durable_runs_total", graph="counted", event="resumed")

    graph = counted_pipeline(url, hang_at="s3", worker="worker-b")
    async with open_runtime(durable_settings(url, "worker-b"), [graph]) as runtime:
        record = await eventually(
            lambda: _finished(runtime, run_id), "worker B finished the run after A's lease expired"
        )
    assert record.status == "succeeded", record.error
    assert record.claims == 2
    assert record.result["last"] == ["s1", "s2", "s3", "s4", "s5"]
    # s1, s2 ran once (checkpointed before the kill); s3 was under way: it ran again on B, and its
    # keyed side effect happened once; s4, s5 ran once, on B
    assert await attempts(url, run_id) == {"s1": 1, "s2": 1, "s3": 2, "s4": 1, "s5": 1}
    workers = await fetch(
        url, "SELECT step, worker FROM durable_attempts WHERE run_id = $1 ORDER BY step", run_id
    )
    assert [(r["step"], r["worker"]) for r in workers if r["step"] in ("s4", "s5")] == [
        ("s4", "worker-b"),
        ("s5", "worker-b"),
    ]
    assert await effects(url, run_id) == [f"{run_id}:s{i}" for i in range(1, 6)]
    assert metric("prism_durable_runs_total", graph="counted", event="resumed") == resumed_before + 1
    # its checkpoints were deleted once the result was recorded
    assert await fetch(url, "SELECT 1 FROM checkpoints WHERE thread_id = $1", run_id) == []
    # the run finished exactly once: the dead worker's token can no longer write an outcome
    engine = create_engine(durable_settings(url, "worker-a"))
    try:
        async with engine.begin() as conn:
            assert not await runs.finish(conn, run_id=run_id, owner="worker-a", token=1, status="failed")
            assert not await runs.finish(conn, run_id=run_id, owner="worker-b", token=2, status="failed")
        async with engine.connect() as conn:
            final = await runs.get(conn, run_id)
    finally:
        await engine.dispose()
    assert final is not None and final.status == "succeeded"


async def _step_started(url: str, run_id: str, step: str) -> bool:
    return step in await attempts(url, run_id)


async def _finished(runtime: DurableRuntime, run_id: str) -> runs.RunRecord | None:
    record = await runtime.status(run_id)
    return record if record is not None and record.finished_at is not None else None


async def _orphan(url: str, run_id: str) -> None:
    """A run whose worker died before its first checkpoint: its lease already expired."""
    engine = create_engine(durable_settings(url, "dead"))
    try:
        async with engine.begin() as conn:
            await runs.create(conn, run_id=run_id, graph="counted", input=[], owner="dead", lease_s=-1.0)
    finally:
        await engine.dispose()


async def test_two_workers_racing_for_the_same_orphans_resume_each_once(counted_db: str) -> None:
    url = counted_db
    run_ids = [f"race-{uuid.uuid4().hex[:8]}" for _ in range(12)]
    for run_id in run_ids:
        await _orphan(url, run_id)
    settings = {
        name: durable_settings(url, name, durable_max_recoveries=64, durable_recovery_scan_s=3600)
        for name in ("race-a", "race-b")
    }
    async with (
        open_runtime(settings["race-a"], [counted_pipeline(url, worker="race-a")], recover=False) as a,
        open_runtime(settings["race-b"], [counted_pipeline(url, worker="race-b")], recover=False) as b,
    ):
        await asyncio.gather(a.recover(), b.recover())
        for run_id in run_ids:
            record = await eventually(lambda rid=run_id: _finished(a, rid), f"run {run_id} finished")
            assert record.status == "succeeded" and record.claims == 2
    for run_id in run_ids:
        assert await attempts(url, run_id) == {f"s{i}": 1 for i in range(1, 6)}, run_id
    rows = await fetch(
        url,
        "SELECT run_id, count(DISTINCT worker) AS workers FROM durable_attempts"
        " WHERE run_id = ANY($1) GROUP BY run_id",
        run_ids,
    )
    assert all(row["workers"] == 1 for row in rows)


def approval_graph() -> Any:
    async def draft(value: Any, step: StepContext) -> Any:
        step.emit({"progress": 0.5})
        return f"draft of {value}"

    async def publish(value: Any, step: StepContext) -> Any:
        return f"published {value}"

    return build_pipeline(
        "approval", [Step("draft", draft), Step("review", approval=True), Step("publish", publish)]
    )


async def test_interrupt_waits_for_approval_then_resumes_with_streamed_events(db_url: str) -> None:
    async with open_runtime(durable_settings(db_url, "approver"), [approval_graph()]) as runtime:
        handle = await runtime.submit("approval", "the memo")
        events = [event async for event in handle.events()]
        kinds = [(e.kind, e.node) for e in events]
        assert kinds == [("custom", None), ("update", "draft"), ("interrupt", None), ("end", None)]
        assert events[0].data == {"step": "draft", "progress": 0.5}
        assert events[2].data == ({"step": "review", "value": "draft of the memo"},)
        outcome = events[-1].data
        assert outcome.status == "interrupted"
        record = await runtime.status(handle.run_id)
        assert record is not None and record.status == "interrupted" and record.owner is None

        first, second = await asyncio.gather(
            runtime.resume(handle.run_id, {"approved": True, "by": "ops"}),
            runtime.resume(handle.run_id, {"approved": True, "by": "ops"}),
            return_exceptions=True,
        )
        winners = [h for h in (first, second) if not isinstance(h, BaseException)]
        assert len(winners) == 1
        assert any(isinstance(h, RunNotResumable) for h in (first, second))
        done = await winners[0].outcome()
        assert done.status == "succeeded"
        assert done.result["last"] == "published draft of the memo"
        assert done.result["outputs"]["review"] == {"approved": True, "by": "ops"}
        with pytest.raises(RunNotResumable):
            await runtime.resume(handle.run_id, True)

        rejected = await runtime.submit("approval", "another memo")
        assert (await rejected.outcome()).status == "interrupted"
        refused = await (await runtime.resume(rejected.run_id, {"approved": False})).outcome()
        assert refused.status == "succeeded"
        assert refused.result["status"] == "rejected" and "publish" not in refused.result["outputs"]


async def test_a_failing_step_is_retried_by_its_retry_policy(db_url: str) -> None:
    calls: list[int] = []

    async def flaky(value: Any, step: StepContext) -> Any:
        calls.append(step.run.claims)
        if len(calls) < 3:
            raise ConnectionError("upstream reset")
        return value * 2

    async def broken(value: Any, step: StepContext) -> Any:
        raise ValueError("bad document")

    graphs = [
        build_pipeline("flaky", [Step("flaky", flaky)]),
        build_pipeline("broken", [Step("broken", broken)]),
    ]
    errors_before = metric(
        "prism_durable_step_duration_seconds_count", graph="flaky", node="flaky", outcome="error"
    )
    async with open_runtime(durable_settings(db_url, "retrier"), graphs) as runtime:
        outcome = await (await runtime.submit("flaky", 21)).outcome()
        assert outcome.status == "succeeded" and outcome.result["last"] == 42
        assert calls == [1, 1, 1]
        # a caller's own context for its execution (e.g. built from the request that started it)
        calls.clear()
        own = await runtime.submit(
            "flaky", 1, context=lambda run: RunInfo(run.run_id, run.graph, run.claims + 100)
        )
        assert (await own.outcome()).status == "succeeded"
        assert calls == [101, 101, 101]
        failed = await (await runtime.submit("broken", 1)).outcome()
        assert failed.status == "failed" and "bad document" in (failed.error or "")
        record = await runtime.status(failed.run_id)
        assert record is not None and record.status == "failed" and record.finished_at is not None
        saver = runtime.checkpointer
        assert await saver.aget_tuple({"configurable": {"thread_id": failed.run_id}}) is not None
        assert await saver.aget_tuple({"configurable": {"thread_id": outcome.run_id}}) is None
    errors = metric("prism_durable_step_duration_seconds_count", graph="flaky", node="flaky", outcome="error")
    assert errors == errors_before + 4  # two failed attempts in each of the two runs


@pytest.mark.skipif(not postgres_available(), reason="Postgres is not reachable")
async def test_checkpointer_setup_is_safe_when_workers_start_together() -> None:
    url = await asyncio.to_thread(create_database)
    try:
        config = DurableConfig(database_url=url, worker_id="setup")

        async def open_once() -> None:
            async with open_checkpointer(config):
                pass

        await asyncio.gather(*(open_once() for _ in range(4)))
        rows = await fetch(url, "SELECT v FROM checkpoint_migrations ORDER BY v")
        assert [row["v"] for row in rows] == list(range(len(MIGRATIONS)))
        # one saver writes one checkpoint at a time: a process gets several on one pool
        async with open_checkpointers(config) as savers:
            assert len(savers) == config.checkpoint_shards == 4
            assert len({id(saver.conn) for saver in savers}) == 1  # type: ignore[attr-defined]
    finally:
        await asyncio.to_thread(drop_database, url)


async def test_a_worker_that_lost_its_lease_stops_and_a_closing_worker_gives_its_runs_back(
    counted_db: str,
) -> None:
    url = counted_db
    graph_a = counted_pipeline(url, hang_at="s2", worker="slow-a")
    graph_b = counted_pipeline(url, hang_at="s2", worker="fast-b")
    settings_b = durable_settings(url, "fast-b", durable_recovery_scan_s=3600)
    async with open_runtime(settings_b, [graph_b], recover=False) as b:
        # a paused worker: its lease is expired and taken over; its next renewal stops its run
        async with open_runtime(durable_settings(url, "slow-a"), [graph_a], recover=False) as a:
            stolen = await a.submit("counted", [])
            await eventually(lambda: _step_started(url, stolen.run_id, "s2"), "A is inside s2")
            await fetch(
                url,
                "UPDATE durable_runs SET lease_expires_at = now() - interval '1 s' WHERE run_id = $1",
                stolen.run_id,
            )
            await b.recover()
            assert (await stolen.outcome()).status == "lease_lost"
            record = await eventually(lambda: _finished(b, stolen.run_id), "B finished the stolen run")
            assert record.status == "succeeded" and record.claims == 2

            # a worker shutting down gives its run back at once (no lease to wait out)
            handed = await a.submit("counted", [])
            await eventually(lambda: _step_started(url, handed.run_id, "s2"), "A is inside s2 again")
        assert (await handed.outcome()).status == "released"
        await b.recover()
        record = await eventually(lambda: _finished(b, handed.run_id), "B finished the handed-over run")
        assert record.status == "succeeded" and record.claims == 2
    assert await attempts(url, stolen.run_id) == {"s1": 1, "s2": 2, "s3": 1, "s4": 1, "s5": 1}
    assert await effects(url, handed.run_id) == [f"{handed.run_id}:s{i}" for i in range(1, 6)]


async def test_a_run_whose_worker_died_after_its_last_step_is_recorded_without_running_again(
    db_url: str,
) -> None:
    calls: list[str] = []

    async def once(value: Any, step: StepContext) -> Any:
        calls.append(step.step)
        return value + 1

    graph = build_pipeline("once", [Step("a", once), Step("b", once)])
    run_id = f"done-{uuid.uuid4().hex[:8]}"
    settings = durable_settings(db_url, "late", durable_keep_checkpoints=True)
    async with open_runtime(settings, [graph], recover=False) as runtime:
        # the dead worker: every step checkpointed, the outcome never written, the lease expired
        compiled = graph.builder.compile(checkpointer=runtime.checkpointer)
        await compiled.ainvoke(
            graph.prepare(1),
            {"configurable": {"thread_id": run_id}},
            context=RunInfo(run_id=run_id, graph="once", claims=1),
            durability="sync",
        )
        engine = create_engine(settings)
        try:
            async with engine.begin() as conn:
                await runs.create(conn, run_id=run_id, graph="once", input=1, owner="dead", lease_s=-1.0)
        finally:
            await engine.dispose()
        assert calls == ["a", "b"]
        await runtime.recover()
        record = await eventually(lambda: _finished(runtime, run_id), "the run was recorded")
    assert record.status == "succeeded" and record.result["last"] == 3
    assert calls == ["a", "b"]


async def test_a_run_and_each_step_attempt_are_spans(sqlite_url: str) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from gateway.observability import tracing

    settings = durable_settings(sqlite_url, "traced")
    exporter = InMemorySpanExporter()
    tracing.configure_tracing(settings, exporter=exporter)
    try:
        async with open_runtime(settings, [approval_graph()]) as runtime:
            handle = await runtime.submit("approval", "the memo")
            assert (await handle.outcome()).status == "interrupted"
    finally:
        tracing.shutdown_tracing()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    run = spans["durable approval"]
    assert run.attributes is not None and run.attributes["prism.durable.run_id"] == handle.run_id
    for step in ("draft", "review"):
        child = spans[f"durable.step {step}"]
        assert child.parent is not None and run.context is not None
        assert child.parent.span_id == run.context.span_id
        assert child.status.is_ok  # the review's interrupt is a pause, not an error
    assert spans["durable.step review"].attributes == {
        "prism.durable.graph": "approval",
        "prism.node": "review",
        "prism.durable.interrupted": True,
    }


async def test_a_run_the_database_interrupted_is_continued_not_failed(db_url: str) -> None:
    import psycopg

    calls: list[int] = []

    async def shaky(value: Any, step: StepContext) -> Any:
        calls.append(step.run.claims)
        if step.run.claims == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return value + 1

    async def first(value: Any, step: StepContext) -> Any:
        return value + 1

    graph = build_pipeline("shaky", [Step("first", first), Step("shaky", shaky, retry=None)])
    async with open_runtime(
        durable_settings(db_url, "shaky", durable_lease_s=1.0, durable_heartbeat_s=0.25), [graph]
    ) as runtime:
        handle = await runtime.submit("shaky", 1)
        outcome = await handle.outcome()
        assert outcome.status == "abandoned" and "server closed" in (outcome.error or "")
        # the lease expires; the recovery worker continues the run from the checkpoint after ``first``
        record = await eventually(lambda: _finished(runtime, handle.run_id), "the run was continued")
    assert record.status == "succeeded" and record.result["last"] == 3 and record.claims == 2
    assert calls == [1, 2]
