"""The whole request flow on one screen: nodes, conditional edges and loops.

    [intent] → router → guard_input → admit ─hit (cached answer)────────────────┐
                                        └─go→ call_model ⟲ retry            │
                                               └─exhausted→ fallback → call_model
                                               └─ok→ guard_output → [shadow] → format → END

``intent`` classifies only when the request needs it (``model: auto``). ``admit`` waits for the
quota reservation and the cache lookup the service sent before the graph started (their round trip
overlaps intent, routing and the input guard); a cache hit goes straight to ``format``.
Built once at start-up (``build_graph``) and invoked per request with a
``PipelineContext``. Routing functions return ``Literal`` labels.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from gateway.agent.nodes.admit import admit
from gateway.agent.nodes.call_model import call_model
from gateway.agent.nodes.fallback import fallback
from gateway.agent.nodes.format import format_response
from gateway.agent.nodes.guard_input import guard_input
from gateway.agent.nodes.guard_output import guard_output
from gateway.agent.nodes.intent import intent
from gateway.agent.nodes.router import route
from gateway.agent.nodes.shadow import shadow
from gateway.agent.state import PipelineContext, PipelineState
from gateway.errors import ProviderError, ProviderRejected
from gateway.observability.tracing import traced_node

Graph = CompiledStateGraph[PipelineState, PipelineContext, PipelineState, PipelineState]


async def after_admit(state: PipelineState) -> Literal["hit", "go"]:
    return "hit" if state.get("cached") is not None else "go"


async def after_call(state: PipelineState) -> Literal["ok", "retry", "fallback", "fail"]:
    error = state.get("error")
    if error is None:
        return "ok"
    if not isinstance(error, ProviderError) or isinstance(error, ProviderRejected):
        return "fail"
    if error.retryable and state.get("attempt", 0) < state.get("max_attempts", 1):
        return "retry"
    if state.get("target_index", 0) + 1 < len(state["route"].targets):
        return "fallback"
    return "fail"


async def after_output_guard(state: PipelineState) -> Literal["shadow", "format"]:
    if state.get("error") is None and state["route"].shadows:
        return "shadow"
    return "format"


def build_graph() -> Graph:
    graph = StateGraph(PipelineState, context_schema=PipelineContext)
    # Each node gets a span when tracing is on (a flag check otherwise).
    graph.add_node("intent", traced_node("intent", intent))
    graph.add_node("router", traced_node("router", route))
    graph.add_node("guard_input", traced_node("guard_input", guard_input))
    graph.add_node("admit", traced_node("admit", admit))
    graph.add_node("call_model", traced_node("call_model", call_model))
    graph.add_node("fallback", traced_node("fallback", fallback))
    graph.add_node("guard_output", traced_node("guard_output", guard_output))
    graph.add_node("shadow", traced_node("shadow", shadow))
    graph.add_node("format", traced_node("format", format_response))

    graph.add_edge(START, "intent")
    graph.add_edge("intent", "router")
    graph.add_edge("router", "guard_input")
    graph.add_edge("guard_input", "admit")
    graph.add_conditional_edges("admit", after_admit, {"hit": "format", "go": "call_model"})
    graph.add_conditional_edges(
        "call_model",
        after_call,
        {"ok": "guard_output", "retry": "call_model", "fallback": "fallback", "fail": "format"},
    )
    graph.add_edge("fallback", "call_model")
    graph.add_conditional_edges("guard_output", after_output_guard, {"shadow": "shadow", "format": "format"})
    graph.add_edge("shadow", "format")
    graph.add_edge("format", END)
    return graph.compile(name="prism")
