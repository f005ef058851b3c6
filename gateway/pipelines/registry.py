"""The document pipelines by name, for the durable runtime and the jobs API (issue #23): a new
pipeline is a module with a ``*_graph(llm)`` factory plus an entry here."""

from __future__ import annotations

from collections.abc import Callable

from gateway.agent.durable.definitions import DurableGraph
from gateway.pipelines.document_analysis import document_analysis_graph
from gateway.pipelines.llm import PipelineLLM
from gateway.pipelines.summarize import summarize_graph

PIPELINES: dict[str, Callable[[PipelineLLM], DurableGraph]] = {
    "summarize": summarize_graph,
    "document_analysis": document_analysis_graph,
}


def pipeline_graphs(llm: PipelineLLM) -> list[DurableGraph]:
    """Every registered pipeline, their model calls through ``llm`` (Prism's request path)."""
    return [factory(llm) for factory in PIPELINES.values()]
