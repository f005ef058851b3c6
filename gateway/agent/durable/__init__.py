"""Durable flows: LangGraph's own runtime (Pregel) with a checkpointer in the application's
database, for flows that live for seconds or minutes (see docs/graph.md, "Two runtimes")."""

from gateway.agent.durable.checkpointer import CheckpointerConfigError, open_checkpointer, postgres_conninfo
from gateway.agent.durable.definitions import (
    DurableGraph,
    RunEvent,
    RunHandle,
    RunInfo,
    RunNotResumable,
    RunOutcome,
)
from gateway.agent.durable.pipeline import Step, StepContext, build_pipeline, instrument, model_step
from gateway.agent.durable.runtime import DurableRuntime, open_runtime

__all__ = [
    "CheckpointerConfigError",
    "DurableGraph",
    "DurableRuntime",
    "RunEvent",
    "RunHandle",
    "RunInfo",
    "RunNotResumable",
    "RunOutcome",
    "Step",
    "StepContext",
    "build_pipeline",
    "instrument",
    "model_step",
    "open_checkpointer",
    "open_runtime",
    "postgres_conninfo",
]
