"""What a durable run is made of: the registered graph, the run's identity, its events, its outcome
and the handle a caller streams from (``gateway/agent/durable/runtime.py`` executes them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from langgraph.graph import StateGraph


class RunNotResumable(LookupError):
    """No interrupted run with this id, or another worker holds it."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a run's context knows about the run. ``claims`` is 1 on the first execution and grows
    with every takeover or resume."""

    run_id: str
    graph: str
    claims: int

    def key(self, step: str) -> str:
        """An idempotency key for ``step``'s side effect: the same on every attempt of the run."""
        return f"{self.run_id}:{step}"


def _run_info(run: RunInfo) -> Any:
    return run


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class DurableGraph:
    """A graph registered by name. ``context`` builds the LangGraph runtime context of each
    execution (default: the :class:`RunInfo`); ``prepare`` turns a run's input into the graph's
    input state; ``output`` picks the stored result from the final state (it must be
    JSON-serialisable)."""

    name: str
    builder: StateGraph[Any, Any, Any, Any]
    context: Callable[[RunInfo], Any] = _run_info
    prepare: Callable[[Any], Any] = _same
    output: Callable[[Mapping[str, Any]], Any] = dict


EventKind = Literal["update", "custom", "interrupt", "end"]
RunStatus = Literal["succeeded", "failed", "interrupted", "lease_lost", "released", "abandoned"]


@dataclass(frozen=True, slots=True)
class RunEvent:
    """``update``: a node's state update (``node``, ``data``); ``custom``: what a node wrote to its
    stream writer; ``interrupt``: the values a node paused with; ``end``: the :class:`RunOutcome`."""

    run_id: str
    kind: EventKind
    node: str | None = None
    data: Any = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one execution ended. ``lease_lost``: another worker took the run over; ``released``:
    this worker stopped and gave the lease back; ``abandoned``: the outcome could not be written,
    the lease expires and the run is resumed."""

    run_id: str
    status: RunStatus
    result: Any = None
    interrupts: tuple[Any, ...] = ()
    error: str | None = None


@dataclass(slots=True)
class RunHandle:
    run_id: str
    task: asyncio.Task[RunOutcome] | None = None
    queue: asyncio.Queue[RunEvent] | None = field(default_factory=asyncio.Queue)

    def put(self, event: RunEvent) -> None:
        if self.queue is not None:
            self.queue.put_nowait(event)

    async def events(self) -> AsyncIterator[RunEvent]:
        """The run's events as they happen, ending with its ``end`` event."""
        if self.queue is None:
            raise RuntimeError("this run's events are not streamed")
        while True:
            event = await self.queue.get()
            yield event
            if event.kind == "end":
                return

    async def outcome(self) -> RunOutcome:
        assert self.task is not None
        return await asyncio.shield(self.task)


def jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=str))


def run_events(run_id: str, mode: str, chunk: Any) -> Iterable[RunEvent]:
    if mode == "custom":
        yield RunEvent(run_id, "custom", data=chunk)
        return
    for node, update in chunk.items():
        if node == "__interrupt__":
            yield RunEvent(run_id, "interrupt", data=tuple(item.value for item in update))
        else:
            yield RunEvent(run_id, "update", node=node, data=update)
