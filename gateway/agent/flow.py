"""Prism's flow table, and the two engines built from it.

A :class:`Flow` is plain data: named nodes (async ``(state, runtime)`` functions), plain edges and
branches (async functions of the state returning a ``Literal`` label, with the label → node map).
From one table:

- :func:`compile_langgraph` builds LangGraph's ``StateGraph`` through its public API only
  (``add_node``, ``add_edge``, ``add_conditional_edges``, ``compile``): what ``docs/graph.md``
  draws and what ``GATEWAY_PIPELINE_ENGINE=langgraph`` runs, on LangGraph's Pregel loop;
- :class:`FastRunner` walks the same table in a plain loop: one node at a time, its partial update
  merged into the state (last value wins), the next node chosen by the edge or the branch.

The fast runner implements only that. Whatever else a table can declare — several edges out of a
node (fan-out), a join, a node retry or cache policy, a deferred node, a reducer on a state key, a
branch whose labels are not a ``Literal`` matching its map — it refuses when it is built
(:class:`FlowDefinitionError`), so a feature LangGraph would honour is never silently ignored.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import CachePolicy, RetryPolicy

NodeFn = Callable[[Any, Runtime[Any]], Awaitable[Mapping[str, Any] | None]]
BranchFn = Callable[[Any], Awaitable[str]]


class FlowDefinitionError(RuntimeError):
    """The flow table is malformed, or uses a feature the fast runner does not implement."""


@dataclass(frozen=True, slots=True)
class Node:
    """A node of the table. ``retry``, ``cache``, ``timeout`` and ``defer`` are LangGraph's node
    policies: the LangGraph build passes them on, the fast runner refuses them."""

    fn: NodeFn
    retry: RetryPolicy | None = None
    cache: CachePolicy[Any] | None = None
    timeout: float | None = None
    defer: bool = False


@dataclass(frozen=True, slots=True)
class Branch:
    """After ``source``, ``path(state)`` returns a label of its ``Literal`` return type; ``ends``
    maps every label to the next node (or ``END``)."""

    path: BranchFn
    ends: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    state: type[Any]
    context: type[Any]
    nodes: Mapping[str, Node]
    edges: Sequence[tuple[str | tuple[str, ...], str]]
    """``(source, target)``; ``START`` as a source names the entry. A tuple source is a join."""
    branches: Mapping[str, Branch] = field(default_factory=dict)


class Runner(Protocol):
    async def ainvoke(self, state: Any, *, context: Any) -> Mapping[str, Any]: ...


def compile_langgraph(flow: Flow) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The table as a compiled LangGraph ``StateGraph`` (public API only)."""
    graph: StateGraph[Any, Any, Any, Any] = StateGraph(flow.state, context_schema=flow.context)
    for name, node in flow.nodes.items():
        graph.add_node(
            name,
            cast(Any, node.fn),
            retry_policy=node.retry,
            cache_policy=node.cache,
            timeout=node.timeout,
            defer=node.defer,
        )
    for source, target in flow.edges:
        graph.add_edge(list(source) if isinstance(source, tuple) else source, target)
    for source, branch in flow.branches.items():
        ends: dict[Hashable, str] = dict(branch.ends.items())
        graph.add_conditional_edges(source, branch.path, ends)
    return graph.compile(name=flow.name)


def branch_labels(path: BranchFn) -> frozenset[str]:
    """The labels of a branch's ``Literal[...]`` return annotation (empty when it has none)."""
    try:
        hints = typing.get_type_hints(path)
    except (NameError, TypeError):
        return frozenset()
    returned = hints.get("return")
    if typing.get_origin(returned) is not typing.Literal:
        return frozenset()
    return frozenset(str(arg) for arg in typing.get_args(returned))


def _reducer_keys(state: type[Any]) -> list[str]:
    """State keys declared ``Annotated[T, reducer]`` (LangGraph would merge them with the reducer)."""
    hints = typing.get_type_hints(state, include_extras=True)
    return [
        key
        for key, hint in hints.items()
        if typing.get_origin(hint) is typing.Annotated and any(callable(m) for m in hint.__metadata__)
    ]


@dataclass(frozen=True, slots=True)
class _Step:
    fn: NodeFn
    edge: str | None
    branch: BranchFn | None
    ends: Mapping[str, str]


class FastRunner:
    """Runs a :class:`Flow` without LangGraph's Pregel loop (see the module docstring for what it
    refuses). Built once at start-up; ``ainvoke`` mutates and returns the state it is given."""

    def __init__(self, flow: Flow, *, recursion_limit: int = 64) -> None:
        reducers = _reducer_keys(flow.state)
        if reducers:
            raise FlowDefinitionError(f"state keys with reducers are not supported: {', '.join(reducers)}")
        edges: dict[str, str] = {}
        for source, target in flow.edges:
            if isinstance(source, tuple):
                raise FlowDefinitionError(f"join edges are not supported: {source!r} -> {target!r}")
            if source in edges:
                raise FlowDefinitionError(f"node {source!r} fans out; the fast runner runs one path")
            if source in flow.branches:
                raise FlowDefinitionError(f"node {source!r} has both an edge and a branch")
            edges[source] = target
        if START not in edges:
            raise FlowDefinitionError("the flow has no entry edge from START")
        known = {*flow.nodes, END}
        steps: dict[str, _Step] = {}
        for name, node in flow.nodes.items():
            if node.retry is not None or node.cache is not None or node.timeout is not None or node.defer:
                raise FlowDefinitionError(
                    f"node {name!r}: retry, cache, timeout and defer policies are not supported"
                )
            if not inspect.iscoroutinefunction(node.fn):
                raise FlowDefinitionError(f"node {name!r} must be an async function")
            branch = flow.branches.get(name)
            if branch is not None:
                if not inspect.iscoroutinefunction(branch.path):
                    raise FlowDefinitionError(f"the branch after {name!r} must be an async function")
                labels = branch_labels(branch.path)
                if not labels or labels != set(branch.ends):
                    raise FlowDefinitionError(
                        f"the branch after {name!r} must return a Literal of exactly its labels "
                        f"{sorted(branch.ends)}, not {sorted(labels)}"
                    )
            elif name not in edges:
                raise FlowDefinitionError(f"node {name!r} has no outgoing edge")
            targets = [edges[name]] if branch is None else list(branch.ends.values())
            unknown = [target for target in targets if target not in known]
            if unknown:
                raise FlowDefinitionError(f"node {name!r} leads to unknown nodes {unknown}")
            steps[name] = _Step(
                fn=node.fn,
                edge=edges.get(name),
                branch=branch.path if branch is not None else None,
                ends=dict(branch.ends) if branch is not None else {},
            )
        for source in flow.branches:
            if source not in flow.nodes:
                raise FlowDefinitionError(f"a branch leaves unknown node {source!r}")
        if edges[START] not in flow.nodes:
            raise FlowDefinitionError(f"the entry {edges[START]!r} is not a node")
        self._steps = steps
        self._entry = edges[START]
        self._limit = recursion_limit
        self.name = flow.name

    async def ainvoke(self, state: Any, *, context: Any) -> Mapping[str, Any]:
        runtime: Runtime[Any] = Runtime(context=context)
        current = self._entry
        steps = self._steps
        for _ in range(self._limit):
            step = steps[current]
            update = await step.fn(state, runtime)
            if update:
                state.update(update)
            current = step.ends[await step.branch(state)] if step.branch is not None else cast(str, step.edge)
            if current == END:
                return cast(Mapping[str, Any], state)
        raise RecursionError(f"the flow {self.name!r} did not finish within {self._limit} steps")


class PregelRunner:
    """Runs a flow on LangGraph's own Pregel loop (``GATEWAY_PIPELINE_ENGINE=langgraph``)."""

    def __init__(self, flow: Flow, *, recursion_limit: int = 64) -> None:
        self.compiled = compile_langgraph(flow)
        self._config: Any = {"recursion_limit": recursion_limit}

    async def ainvoke(self, state: Any, *, context: Any) -> Mapping[str, Any]:
        result: Mapping[str, Any] = await self.compiled.ainvoke(state, config=self._config, context=context)
        return result
