"""The two runtimes on one flow of trivial steps (called by ``scripts/bench_graph.py --durable``).

Per request (one flow run, one at a time), p50/p95:

- ``fast runner``: Prism's ``FastRunner`` over the flow table (what the chat hot path runs);
- ``pregel``: LangGraph's Pregel loop, no checkpointer (``GATEWAY_PIPELINE_ENGINE=langgraph``);
- ``pregel+memory`` / ``pregel+sqlite`` / ``pregel+postgres``: the same with a checkpointer, a new
  ``thread_id`` per run, ``durability="sync"`` (every step's checkpoint written before the next);
- ``pregel+pg async``: Postgres with ``synchronous_commit=off`` on the checkpointer's connections;
- ``durable run``: ``DurableRuntime.submit`` → outcome on Postgres (lease row, checkpoints, outcome);
  then runs/s with 8 and 32 runs in flight, through 1 and 4 checkpoint writers (``open_checkpointers``).

Then each checkpoint write (``aput``: the step's checkpoint; ``aput_writes``: a task's writes) of
the Postgres run, timed where Pregel calls it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from gateway.agent.durable import DurableRuntime, Step, StepContext, build_pipeline, open_checkpointer
from gateway.agent.durable.checkpointer import open_checkpointers
from gateway.agent.flow import FastRunner, Flow, Node, compile_langgraph
from gateway.config.durable import DurableConfig
from gateway.config.settings import get_settings
from gateway.db.engine import create_engine
from gateway.db.migrate import migrate


class Count(TypedDict):
    i: int


class NoContext:
    pass


async def _inc(state: Count, runtime: Runtime[Any]) -> dict[str, int]:
    return {"i": state["i"] + 1}


def _flow(steps: int) -> Flow:
    names = [f"s{k}" for k in range(steps)]
    edges: list[tuple[str | tuple[str, ...], str]] = [(START, names[0])]
    edges += list(zip(names, [*names[1:], END], strict=True))
    return Flow(
        name="bench", state=Count, context=NoContext, nodes={n: Node(_inc) for n in names}, edges=edges
    )


def _builder(steps: int) -> StateGraph[Any, Any, Any, Any]:
    graph: StateGraph[Any, Any, Any, Any] = StateGraph(Count)
    names = [f"s{k}" for k in range(steps)]
    for name in names:
        graph.add_node(name, _inc)
    graph.add_edge(START, names[0])
    for source, target in zip(names, [*names[1:], END], strict=True):
        graph.add_edge(source, target)
    return graph


async def _time(run: Callable[[int], Awaitable[Any]], n: int) -> list[float]:
    for i in range(min(50, n)):
        await run(-1 - i)  # warm-up
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await run(i)
        samples.append(time.perf_counter() - started)
    return sorted(samples)


def _report(label: str, samples: list[float], steps: int) -> float:
    p50 = statistics.median(samples) * 1000
    p95 = samples[int(len(samples) * 0.95)] * 1000
    print(f"{label:<18} steps={steps} n={len(samples):<5} p50={p50:8.3f} ms  p95={p95:8.3f} ms")
    return p50


def _timed(saver: Any, name: str, samples: list[float]) -> None:
    original = getattr(saver, name)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            samples.append(time.perf_counter() - started)

    setattr(saver, name, timed)


async def _checkpointed(
    label: str, config: DurableConfig, n: int, steps: int, *, writes: bool = False
) -> None:
    async with open_checkpointer(config) as saver:
        puts: list[float] = []
        put_writes: list[float] = []
        if writes:
            _timed(saver, "aput", puts)
            _timed(saver, "aput_writes", put_writes)
        graph = _builder(steps).compile(checkpointer=saver)
        tag = label.replace("+", "-")

        async def run(i: int) -> Any:
            config_ = {"configurable": {"thread_id": f"bench-{tag}-{i}-{time.monotonic_ns()}"}}
            return await graph.ainvoke({"i": 0}, config_, durability="sync")

        _report(label, await _time(run, n), steps)
        for name, values in (("aput", puts), ("aput_writes", put_writes)):
            if values:
                values.sort()
                p50 = statistics.median(values) * 1000
                p95 = values[int(len(values) * 0.95)] * 1000
                calls = len(values) / (n + min(50, n))
                print(f"  {name:<12} calls/run={calls:.1f} p50={p50:.3f} ms p95={p95:.3f} ms")


async def _durable_runs(runtime: DurableRuntime, n: int, steps: int, shards: int) -> None:
    async def durable(i: int) -> Any:
        return await (await runtime.submit("bench", 0)).outcome()

    if shards == 1:
        _report("durable run", await _time(durable, n), steps)
    for concurrency in (8, 32):
        started = time.perf_counter()
        rounds = max(1, n // concurrency)
        for _ in range(rounds):
            handles = [await runtime.submit("bench", 0) for _ in range(concurrency)]
            await asyncio.gather(*(h.outcome() for h in handles))
        elapsed = time.perf_counter() - started
        print(
            f"durable runs, {concurrency:>2} in flight, {shards} checkpoint writer(s): "
            f"{rounds * concurrency / elapsed:7.1f} runs/s"
        )


async def bench_runtimes(pg_base: str, *, n: int, steps: int) -> None:
    from tests.integration.db_fixtures import create_database, drop_database

    fast = FastRunner(_flow(steps))
    context = NoContext()
    _report("fast runner", await _time(lambda i: fast.ainvoke({"i": 0}, context=context), n), steps)
    pregel = compile_langgraph(_flow(steps))
    _report("pregel", await _time(lambda i: pregel.ainvoke({"i": 0}, context=context), n), steps)

    memory = _builder(steps).compile(checkpointer=InMemorySaver())

    async def in_memory(i: int) -> Any:
        return await memory.ainvoke({"i": 0}, {"configurable": {"thread_id": f"m{i}"}}, durability="sync")

    _report("pregel+memory", await _time(in_memory, n), steps)

    sqlite_path = Path("var") / f"bench-durable-{time.monotonic_ns()}.db"
    sqlite_path.parent.mkdir(exist_ok=True)
    try:
        sqlite = DurableConfig(database_url=f"sqlite+aiosqlite:///{sqlite_path}")
        await _checkpointed("pregel+sqlite", sqlite, n, steps)
    finally:
        for suffix in ("", "-wal", "-shm"):
            await asyncio.to_thread(Path(f"{sqlite_path}{suffix}").unlink, missing_ok=True)

    url = await asyncio.to_thread(create_database, pg_base)
    try:
        config = DurableConfig(database_url=url, worker_id="bench")
        await _checkpointed("pregel+postgres", config, n, steps, writes=True)
        no_flush = DurableConfig(database_url=url, worker_id="bench", synchronous_commit=False)
        await _checkpointed("pregel+pg async", no_flush, n, steps, writes=True)
        settings = get_settings(database_url=url, env="test")
        await migrate(settings)
        engine = create_engine(settings)

        async def step(value: Any, ctx: StepContext) -> Any:
            return value + 1

        pipeline = build_pipeline("bench", [Step(f"s{k}", step, retry=None) for k in range(steps)])
        try:
            for shards in (1, 4):
                sharded = dataclasses.replace(config, checkpoint_shards=shards, pool_size=max(4, shards))
                async with open_checkpointers(sharded) as savers:
                    runtime = DurableRuntime(
                        engine=engine, checkpointer=savers, config=sharded, graphs=[pipeline]
                    )
                    runtime.start(recover=False)
                    try:
                        await _durable_runs(runtime, n, steps, shards)
                    finally:
                        await runtime.aclose()
        finally:
            await engine.dispose()
    finally:
        await asyncio.to_thread(drop_database, url, pg_base)
