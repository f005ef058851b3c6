"""Durable runs: registered LangGraph graphs on LangGraph's own runtime, checkpointed, leased.

A run is one thread of a compiled graph (``thread_id = run_id``) plus its lease row
(``db/repositories/durable_runs.py``). A worker executes a run only while it holds the lease:

- :meth:`DurableRuntime.submit` creates the run (and its lease) and starts it;
- the ``durable_heartbeat`` worker (``leases.py``) renews the leases of the runs this process
  executes; a lease it finds taken over (or cannot renew for most of ``lease_s``) stops its run at
  once (``lease_lost``);
- the ``durable_recovery`` worker (at start, then every ``recovery_scan_s``) claims runs whose
  lease expired — their worker died — and continues each from its last checkpoint. The claim is one
  conditional ``UPDATE``, so of several workers exactly one resumes a run;
- a node that calls ``interrupt()`` ends the execution with the run ``interrupted`` and the lease
  given back; :meth:`DurableRuntime.resume` claims it again and continues with
  ``Command(resume=value)``;
- the outcome (``succeeded`` with the output, or ``failed`` with the error) is written once, by the
  holder of the current lease token. When the database goes away under a run, the run is not
  failed: it is left to its lease (``abandoned``) and continued from its last checkpoint, up to
  ``max_claims`` times.

Steps run with ``durability="sync"``: a step's checkpoint is written before the next step starts,
so a resumed run repeats at most the step that was under way when its worker died. Steps with side
effects key them with :meth:`RunInfo.key` (the same on every attempt) to make that repeat harmless.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.agent.durable.checkpointer import open_checkpointers
from gateway.agent.durable.definitions import (
    DurableGraph,
    RunEvent,
    RunHandle,
    RunInfo,
    RunNotResumable,
    RunOutcome,
    jsonable,
    run_events,
)
from gateway.agent.durable.leases import DATABASE_ERRORS, LeaseKeeper
from gateway.background import BackgroundWorker
from gateway.config.durable import DurableConfig
from gateway.config.settings import Settings
from gateway.db.engine import create_engine
from gateway.db.repositories import durable_runs as runs
from gateway.observability import tracing
from gateway.observability.metrics import DURABLE_RUNS, DURABLE_RUNS_ACTIVE

log = structlog.get_logger("gateway.durable")


class DurableRuntime:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        checkpointer: BaseCheckpointSaver[Any] | Sequence[BaseCheckpointSaver[Any]],
        config: DurableConfig,
        graphs: Iterable[DurableGraph],
    ) -> None:
        self.config = config
        self._savers = [checkpointer] if isinstance(checkpointer, BaseCheckpointSaver) else list(checkpointer)
        self.checkpointer = self._savers[0]
        """One of the savers (any of them reads every run's checkpoints)."""
        self._engine = engine
        self._graphs = {
            g.name: (g, [g.builder.compile(checkpointer=saver, name=g.name) for saver in self._savers])
            for g in graphs
        }
        self._leases = LeaseKeeper(engine=engine, config=config)
        self._handles: dict[str, RunHandle] = {}
        self._recovered: set[str] = set()
        self._contexts: dict[str, Callable[[RunInfo], Any]] = {}
        self._recovery = BackgroundWorker(
            "durable_recovery", self.recover, interval_s=config.recovery_scan_s, first=self.recover
        )

    @property
    def graphs(self) -> frozenset[str]:
        return frozenset(self._graphs)

    def start(self, *, recover: bool = True) -> None:
        self._leases.worker.start()
        if recover:
            self._recovery.start()

    async def aclose(self) -> None:
        """Stop looking for orphans, stop the runs under way and give their leases back (another
        worker continues them from their last checkpoint at once), stop renewing."""
        await self._recovery.aclose()
        handles = [h for h in self._handles.values() if h.task is not None and not h.task.done()]
        for handle in handles:
            assert handle.task is not None
            handle.task.cancel()
        await asyncio.gather(*(h.task for h in handles if h.task is not None), return_exceptions=True)
        await self._leases.worker.aclose()

    def _shard(self, run_id: str) -> int:
        """The saver a run's checkpoints are written through: always the same for one run."""
        return zlib.crc32(run_id.encode()) % len(self._savers)

    def handle(self, run_id: str) -> RunHandle | None:
        """The handle of a run this process executes now."""
        return self._handles.get(run_id)

    async def status(self, run_id: str) -> runs.RunRecord | None:
        async with self._engine.connect() as conn:
            return await runs.get(conn, run_id)

    async def submit(
        self,
        graph: str,
        input: Any,
        *,
        run_id: str | None = None,
        context: Callable[[RunInfo], Any] | None = None,
    ) -> RunHandle:
        """Create a run of ``graph`` and start it; raises ``runs.RunExists`` for a taken id.
        ``context`` builds this execution's runtime context instead of the graph's factory (e.g.
        from the request that started it); a worker that takes the run over uses the graph's."""
        if graph not in self._graphs:
            raise KeyError(f"no durable graph named {graph!r}")
        run_id = run_id or uuid.uuid4().hex
        async with self._engine.begin() as conn:
            lease = await runs.create(
                conn,
                run_id=run_id,
                graph=graph,
                input=jsonable(input),
                owner=self.config.worker_id,
                lease_s=self.config.lease_s,
            )
        return self._launch(lease, self._graphs[graph][0].prepare(input), event="started", context=context)

    async def resume(
        self, run_id: str, value: Any, *, context: Callable[[RunInfo], Any] | None = None
    ) -> RunHandle:
        """Continue an interrupted run with ``Command(resume=value)``."""
        async with self._engine.begin() as conn:
            lease = await runs.claim(
                conn,
                run_id=run_id,
                owner=self.config.worker_id,
                lease_s=self.config.lease_s,
                statuses=("interrupted",),
            )
        if lease is None:
            raise RunNotResumable(run_id)
        return self._launch(lease, Command(resume=value), event="resumed", context=context)

    async def recover(self) -> bool:
        """Claim runs (of the graphs registered here) whose worker died and continue them, at most
        ``max_recoveries`` at a time."""
        free = self.config.max_recoveries - len(self._recovered)
        if free <= 0:
            return True
        async with self._engine.connect() as conn:
            candidates = await runs.orphans(conn, graphs=list(self._graphs), limit=free)
        for run_id in candidates:
            async with self._engine.begin() as conn:
                lease = await runs.claim(
                    conn, run_id=run_id, owner=self.config.worker_id, lease_s=self.config.lease_s
                )
            if lease is None:
                continue  # another worker was faster
            self._recovered.add(run_id)
            self._launch(lease, None, event="resumed", stream=False)
        return True

    async def _give_back(self, lease: runs.Lease, status: str) -> bool:
        async with self._engine.begin() as conn:
            return await runs.release(
                conn, run_id=lease.run_id, owner=self.config.worker_id, token=lease.token, status=status
            )

    def _launch(
        self,
        lease: runs.Lease,
        payload: Any,
        *,
        event: str,
        stream: bool = True,
        context: Callable[[RunInfo], Any] | None = None,
    ) -> RunHandle:
        handle = RunHandle(lease.run_id, queue=asyncio.Queue() if stream else None)
        if context is not None:
            self._contexts[lease.run_id] = context
        self._handles[lease.run_id] = handle
        task = asyncio.get_running_loop().create_task(
            self._execute(handle, lease, payload, event), name=f"durable-{lease.run_id}"
        )
        handle.task = task
        self._leases.hold(lease.run_id, lease.token, on_lost=task.cancel)
        return handle

    async def _execute(self, handle: RunHandle, lease: runs.Lease, payload: Any, event: str) -> RunOutcome:
        graph, shards = self._graphs[lease.graph]
        run_id = lease.run_id
        compiled = shards[self._shard(run_id)]
        config: RunnableConfig = {
            "configurable": {"thread_id": run_id},
            "recursion_limit": self.config.recursion_limit,
        }
        bound = log.bind(
            run_id=run_id, graph=lease.graph, durable_worker=self.config.worker_id, claim=lease.claims
        )
        DURABLE_RUNS.labels(graph=lease.graph, event=event).inc()
        DURABLE_RUNS_ACTIVE.inc()
        bound.info(f"durable_run_{event}")
        attributes: dict[str, str | int] = {
            "prism.durable.run_id": run_id,
            "prism.durable.graph": lease.graph,
            "prism.durable.claim": lease.claims,
        }
        outcome: RunOutcome
        with tracing.tracer().start_as_current_span(f"durable {lease.graph}", attributes=attributes):
            try:
                outcome = await self._drive(handle, graph, compiled, lease, payload, config)
            except asyncio.CancelledError:
                self._leases.release(run_id)
                if run_id in self._leases.lost:
                    outcome = RunOutcome(run_id, "lease_lost")
                else:
                    outcome = await asyncio.shield(self._hand_back(lease))
            except Exception as exc:
                self._leases.release(run_id)
                error = f"{type(exc).__name__}: {exc}"[:2000]
                bound.warning("durable_run_error", error=error)
                if isinstance(exc, DATABASE_ERRORS) and lease.claims < self.config.max_claims:
                    # the database went away under the run: its lease expires, and a worker
                    # (this one, maybe) continues it from the last checkpoint that was written
                    outcome = RunOutcome(run_id, "abandoned", error=error)
                else:
                    outcome = await self._record(lease, "failed", error=error)
            finally:
                self._leases.forget(run_id)
                self._recovered.discard(run_id)
                self._contexts.pop(run_id, None)
                self._handles.pop(run_id, None)
                DURABLE_RUNS_ACTIVE.dec()
        DURABLE_RUNS.labels(graph=lease.graph, event=outcome.status).inc()
        bound.info("durable_run_ended", status=outcome.status, error=outcome.error)
        handle.put(RunEvent(run_id, "end", data=outcome))
        return outcome

    async def _drive(
        self,
        handle: RunHandle,
        graph: DurableGraph,
        compiled: Any,
        lease: runs.Lease,
        payload: Any,
        config: RunnableConfig,
    ) -> RunOutcome:
        run_id = lease.run_id
        if payload is None:  # a takeover: continue from the last checkpoint
            snapshot = await compiled.aget_state(config)
            if snapshot.created_at is None:
                payload = graph.prepare(lease.input)  # the worker died before the first checkpoint
        factory = self._contexts.get(run_id, graph.context)
        context = factory(RunInfo(run_id=run_id, graph=lease.graph, claims=lease.claims))
        async for mode, chunk in compiled.astream(
            payload, config, context=context, stream_mode=["updates", "custom"], durability="sync"
        ):
            for event in run_events(run_id, mode, chunk):
                handle.put(event)
        snapshot = await compiled.aget_state(config)
        self._leases.release(run_id)  # no more renewals: the lease is valid long enough to write
        if snapshot.next:
            interrupts = tuple(item.value for item in snapshot.interrupts)
            released = await self._give_back(lease, "interrupted")
            return RunOutcome(run_id, "interrupted" if released else "lease_lost", interrupts=interrupts)
        outcome = await self._record(lease, "succeeded", result=jsonable(graph.output(snapshot.values)))
        if outcome.status == "succeeded" and not self.config.keep_checkpoints:
            await self._forget(run_id)
        return outcome

    async def _hand_back(self, lease: runs.Lease) -> RunOutcome:
        try:
            released = await self._give_back(lease, "running")
        except DATABASE_ERRORS as exc:
            return RunOutcome(lease.run_id, "abandoned", error=f"{type(exc).__name__}: {exc}")
        return RunOutcome(lease.run_id, "released" if released else "lease_lost")

    async def _forget(self, run_id: str) -> None:
        """A succeeded run's checkpoints are no longer needed (its result is in its row); a failed
        run's stay, to inspect or replay."""
        try:
            await self._savers[self._shard(run_id)].adelete_thread(run_id)
        except Exception as exc:  # the run succeeded; the leftovers cost only space
            log.warning("durable_checkpoint_delete_failed", run_id=run_id, error=type(exc).__name__)

    async def _record(
        self, lease: runs.Lease, status: str, *, result: Any = None, error: str | None = None
    ) -> RunOutcome:
        try:
            async with self._engine.begin() as conn:
                written = await runs.finish(
                    conn,
                    run_id=lease.run_id,
                    owner=self.config.worker_id,
                    token=lease.token,
                    status=status,
                    result=result,
                    error=error,
                )
        except DATABASE_ERRORS as exc:
            return RunOutcome(lease.run_id, "abandoned", error=f"{type(exc).__name__}: {exc}")
        if not written:
            return RunOutcome(lease.run_id, "lease_lost")
        return RunOutcome(
            lease.run_id, "succeeded" if status == "succeeded" else "failed", result, error=error
        )


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    graphs: Iterable[DurableGraph],
    *,
    engine: AsyncEngine | None = None,
    recover: bool = True,
) -> AsyncIterator[DurableRuntime]:
    """Open the checkpointer (and an engine unless given), start the runtime, close both on exit."""
    config = DurableConfig.from_settings(settings)
    own_engine = engine is None
    if engine is None:
        engine = create_engine(settings.model_copy(update={"database_url": config.database_url}))
    try:
        async with open_checkpointers(config) as checkpointer:
            runtime = DurableRuntime(engine=engine, checkpointer=checkpointer, config=config, graphs=graphs)
            runtime.start(recover=recover)
            try:
                yield runtime
            finally:
                await runtime.aclose()
    finally:
        if own_engine:
            await engine.dispose()
