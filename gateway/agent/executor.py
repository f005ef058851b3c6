"""A direct executor for the compiled request graph.

LangGraph's Pregel loop costs ~0.45 ms per ``ainvoke`` even for a one-node graph on this kind of
machine (and ~1.6 ms for seven nodes), three times the whole pipeline budget of 0.5 ms. The
request graph needs none of what that machinery pays for: no checkpoints, no parallel branches,
no reducers (every channel is last-value), no interrupts. ``DirectExecutor`` walks the *same*
``StateGraph`` that ``build_graph()`` compiles — its nodes, edges and conditional branches, read
once at start-up — calling each node with a ``Runtime`` carrying the request's context and merging
the partial state it returns. ``graph.py`` stays the single definition of the flow, and
``GATEWAY_PIPELINE_ENGINE=langgraph`` runs requests through Pregel instead (the equivalence of
both engines is tested).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from langgraph.graph import END, START
from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState

NodeFn = Callable[[PipelineState, Runtime[PipelineContext]], Awaitable[dict[str, Any]]]
BranchFn = Callable[[PipelineState], Awaitable[str]]


class GraphRunner(Protocol):
    async def ainvoke(self, state: PipelineState, *, context: PipelineContext) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class _Step:
    node: NodeFn
    edge: str | None
    branch: BranchFn | None
    ends: Mapping[str, str]


class GraphDefinitionError(RuntimeError):
    """The graph uses a feature the direct executor does not implement."""


class DirectExecutor:
    def __init__(self, compiled: Any, *, recursion_limit: int = 64) -> None:
        builder = compiled.builder
        self._limit = recursion_limit
        edges: dict[str, str] = {}
        for source, target in builder.edges:
            if source in edges:
                raise GraphDefinitionError(f"node {source!r} fans out; the direct executor runs one path")
            edges[source] = target
        if builder.waiting_edges:
            raise GraphDefinitionError("join edges are not supported by the direct executor")
        steps: dict[str, _Step] = {}
        for name, spec in builder.nodes.items():
            function = getattr(spec.runnable, "afunc", None)
            if function is None:
                raise GraphDefinitionError(f"node {name!r} must be an async function")
            branches = builder.branches.get(name, {})
            if len(branches) > 1:
                raise GraphDefinitionError(f"node {name!r} has several branches")
            branch = next(iter(branches.values()), None)
            branch_fn = getattr(branch.path, "afunc", None) if branch is not None else None
            if branch is not None and (branch_fn is None or not branch.ends):
                raise GraphDefinitionError(f"the branch of {name!r} must be async with a path map")
            if branch is None and name not in edges:
                raise GraphDefinitionError(f"node {name!r} has no outgoing edge")
            steps[name] = _Step(
                node=cast(NodeFn, function),
                edge=edges.get(name),
                branch=cast(BranchFn | None, branch_fn),
                ends=dict(branch.ends or {}) if branch else {},
            )
        self._steps = steps
        self._entry = edges[START]

    async def ainvoke(self, state: PipelineState, *, context: PipelineContext) -> PipelineState:
        runtime: Runtime[PipelineContext] = Runtime(context=context)
        current = self._entry
        steps = self._steps
        for _ in range(self._limit):
            step = steps[current]
            update = await step.node(state, runtime)
            if update:
                state.update(update)  # type: ignore[typeddict-item]
            current = step.ends[await step.branch(state)] if step.branch is not None else cast(str, step.edge)
            if current == END:
                return state
        raise RecursionError(f"the request graph did not finish within {self._limit} steps")


class PregelRunner:
    """Runs requests through LangGraph's own Pregel loop (``GATEWAY_PIPELINE_ENGINE=langgraph``)."""

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled

    async def ainvoke(self, state: PipelineState, *, context: PipelineContext) -> Mapping[str, Any]:
        result: Mapping[str, Any] = await self._compiled.ainvoke(state, context=context)
        return result
