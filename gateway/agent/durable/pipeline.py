"""Linear pipelines: a named sequence of steps as a LangGraph graph for the durable runtime.

A step is an async function ``(value, step) -> value``: it gets the previous step's output (the
run's input for the first) and a :class:`StepContext` (the run, an idempotency key for its side
effects, a writer for progress events). Each step is a node with LangGraph's ``RetryPolicy``; an
approval step pauses the run with ``interrupt()`` until :meth:`DurableRuntime.resume` answers it
(``True``, or ``{"approved": true, ...}``; anything else rejects and ends the run).

Every step attempt is timed (``prism_durable_step_duration_seconds{graph,node,outcome}``) and runs
in a span ``durable.step {name}``.

The state: ``input``, ``outputs`` (step name → its output), ``last`` (the latest output),
``rejected`` (set by a refused approval).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from langgraph.config import get_stream_writer
from langgraph.errors import GraphInterrupt
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy, interrupt
from opentelemetry.trace import Status, StatusCode

from gateway.agent.durable.definitions import DurableGraph, RunInfo
from gateway.observability import tracing
from gateway.observability.metrics import DURABLE_STEP_LATENCY
from gateway.providers.base import ModelCall
from gateway.providers.registry import Target


class PipelineState(TypedDict, total=False):
    input: Any
    outputs: dict[str, Any]
    last: Any
    rejected: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class StepContext:
    run: RunInfo
    step: str
    attempt_started: float

    @property
    def key(self) -> str:
        """The idempotency key of this step's side effect (the same on every retry and takeover)."""
        return self.run.key(self.step)

    def emit(self, data: Any) -> None:
        """A ``custom`` event to the run's stream (progress, partial results)."""
        get_stream_writer()({"step": self.step, **(data if isinstance(data, Mapping) else {"data": data})})


StepFn = Callable[[Any, StepContext], Awaitable[Any]]

DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.2)


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    fn: StepFn | None = None
    """``None`` only for an approval step."""
    retry: RetryPolicy | None = DEFAULT_RETRY
    approval: bool = False


def instrument(
    graph: str, node: str, fn: Callable[[Any, Any], Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """Time each attempt of a node ``(state, runtime)`` and wrap it in a span."""

    async def timed(state: Any, runtime: Runtime[Any]) -> Any:
        started = time.perf_counter()
        outcome = "ok"
        with tracing.tracer().start_as_current_span(
            f"durable.step {node}",
            attributes={"prism.durable.graph": graph, "prism.node": node},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await fn(state, runtime)
            except GraphInterrupt:  # a pause, not a failure
                outcome = "interrupt"
                span.set_attribute("prism.durable.interrupted", True)
                raise
            except Exception as exc:
                outcome = "error"
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            finally:
                DURABLE_STEP_LATENCY.labels(graph=graph, node=node, outcome=outcome).observe(
                    time.perf_counter() - started
                )

    return timed


def _work_node(step: Step) -> Callable[[PipelineState, Runtime[RunInfo]], Awaitable[dict[str, Any]]]:
    assert step.fn is not None
    fn = step.fn

    async def node(state: PipelineState, runtime: Runtime[RunInfo]) -> dict[str, Any]:
        value = state.get("last", state.get("input"))
        output = await fn(
            value, StepContext(run=runtime.context, step=step.name, attempt_started=time.time())
        )
        return {"outputs": {**state.get("outputs", {}), step.name: output}, "last": output}

    return node


def _approval_node(step: Step) -> Callable[[PipelineState, Runtime[RunInfo]], Awaitable[dict[str, Any]]]:
    async def node(state: PipelineState, runtime: Runtime[RunInfo]) -> dict[str, Any]:
        answer = interrupt({"step": step.name, "value": state.get("last", state.get("input"))})
        approved = answer is True or (isinstance(answer, Mapping) and answer.get("approved") is True)
        outputs = {**state.get("outputs", {}), step.name: answer}
        if approved:
            return {"outputs": outputs}
        return {"outputs": outputs, "rejected": {"step": step.name, "answer": answer}}

    return node


async def _approved(state: PipelineState) -> Literal["approved", "rejected"]:
    return "rejected" if state.get("rejected") else "approved"


def build_pipeline(name: str, steps: Sequence[Step]) -> DurableGraph:
    """The steps in order, each a node; an approval step branches to the end when refused."""
    if not steps:
        raise ValueError(f"pipeline {name!r} has no steps")
    names = [step.name for step in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"pipeline {name!r} repeats a step name")
    graph: StateGraph[PipelineState, RunInfo, PipelineState, PipelineState] = StateGraph(
        PipelineState, context_schema=RunInfo
    )
    for step in steps:
        if step.approval:
            graph.add_node(step.name, instrument(name, step.name, _approval_node(step)))
        else:
            if step.fn is None:
                raise ValueError(f"pipeline {name!r}: step {step.name!r} has no function")
            graph.add_node(step.name, instrument(name, step.name, _work_node(step)), retry_policy=step.retry)
    graph.add_edge(START, names[0])
    for step, following in zip(steps, [*names[1:], END], strict=True):
        if step.approval:
            graph.add_conditional_edges(step.name, _approved, {"approved": following, "rejected": END})
        else:
            graph.add_edge(step.name, following)
    return DurableGraph(name=name, builder=graph, prepare=_input_state, output=_output)


def _input_state(value: Any) -> PipelineState:
    return {"input": value, "outputs": {}}


def _output(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": "rejected" if state.get("rejected") else "done",
        "last": state.get("last"),
        "outputs": state.get("outputs", {}),
        "rejected": state.get("rejected"),
    }


def model_step(target: Target, prompt: str, *, max_tokens: int | None = None) -> StepFn:
    """A step that asks a configured model (through Prism's provider layer): ``prompt`` is formatted
    with ``{input}``, the previous step's output; the step's output is the answer's text."""

    async def call(value: Any, step: StepContext) -> Any:
        params: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
        completion = await target.provider.complete(
            ModelCall(
                model=target.upstream_model,
                messages=[{"role": "user", "content": prompt.format(input=value)}],
                params=params,
            )
        )
        step.emit({"model": target.name, "tokens": completion.usage.total_tokens})
        return completion.choices[0].content if completion.choices else None

    return call
