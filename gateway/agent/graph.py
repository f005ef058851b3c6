"""A request's whole life, on one screen: the flow table.

    admit → intent → router ─refused─────────┐
                       └ok→ guard_input → gate ─refused→ settle → END
                                               ├hit→ deliver
                                               └go→ call_model ⟲ retry
                                                     ├tools→ tools ─call→ call_model   (tool loop)
                                                     │        └stop→ guard_output
                                                     ├fallback→ fallback → call_model
                                                     ├fail→ settle
                                                     └ok→ guard_output ─fail→ settle
                                                           ├regenerate (once)→ regenerate → call_model
                                                           └→ [shadow] → deliver ─json, cached→ settle
                                                                                 └stream→ END (relay settles)

- **admit** sends the quota reservation and the cache's lookup-or-lock; they stay in flight while
  the **decide** steps run: ``intent`` (only for ``model: auto``; low confidence may escalate to a
  small LLM), ``router`` (alias, split, experiment, tier, stickiness floor, fallbacks, shadows) and
  ``guard_input`` (the policy of where the prompt goes). A decide refusal skips to ``gate``.
- **gate** waits for the admission: a 429 first, then a cache hit (which beats a decide refusal),
  then the refusal; else the request goes upstream.
- **call**: ``call_model`` makes one attempt (a stream is held until its first delta); retries
  loop on it, ``fallback`` moves down the chain.
- **tools** (only a request with server tools: ``state['server_tools']``): the model's answer
  asks for server tools; they run and the model is called again with the results, until it
  answers or a bound is hit (``gateway/agent/nodes/tools.py``, docs/tools.md). Such a request
  runs this same table on LangGraph's Pregel runtime (``CompletionServices.tool_graph``).
- **deliver**: ``guard_output`` checks a whole answer or hangs its filter on the stream,
  ``shadow`` plans the mirrored calls, ``deliver`` frames JSON, a cached answer or the SSE relay.
- **settle**: usage record, metrics, quota settlement, cache write, conversation store, then the
  shadow calls. A live stream settles at the end of its relay, before its last frame.

``/v1/route/explain`` runs the decide steps of this table (``DECIDE``: the same ``intent`` and
``router`` nodes) and nothing else. Built once at start-up by ``build_runner``; both engines
(``gateway/agent/flow.py``) run this one table.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph

from gateway.agent.flow import (
    Branch,
    FastRunner,
    Flow,
    Node,
    NodeFn,
    PregelRunner,
    Runner,
    compile_langgraph,
)
from gateway.agent.nodes.admit import admit
from gateway.agent.nodes.call_model import call_model
from gateway.agent.nodes.deliver import deliver
from gateway.agent.nodes.fallback import fallback
from gateway.agent.nodes.gate import gate
from gateway.agent.nodes.guard_input import guard_input
from gateway.agent.nodes.guard_output import guard_output
from gateway.agent.nodes.intent import intent
from gateway.agent.nodes.regenerate import after_output_guard, regenerate
from gateway.agent.nodes.router import route
from gateway.agent.nodes.settle import settle
from gateway.agent.nodes.shadow import shadow
from gateway.agent.nodes.tools import after_tools, run_tools, server_calls
from gateway.agent.state import PipelineContext, PipelineState
from gateway.errors import ProviderError, ProviderRejected
from gateway.observability.tracing import traced_node

Engine = Literal["direct", "langgraph"]


async def after_router(state: PipelineState) -> Literal["ok", "refused"]:
    return "refused" if state.get("error") is not None else "ok"


async def after_gate(state: PipelineState) -> Literal["hit", "go", "refused"]:
    if state.get("cached") is not None:
        return "hit"
    return "refused" if state.get("error") is not None else "go"


async def after_call(state: PipelineState) -> Literal["ok", "tools", "retry", "fallback", "fail"]:
    error = state.get("error")
    if error is None:
        if "server_tools" in state and server_calls(state)[0]:
            return "tools"
        return "ok"
    if not isinstance(error, ProviderError) or isinstance(error, ProviderRejected):
        return "fail"
    if error.retryable and state.get("attempt", 0) < state.get("max_attempts", 1):
        return "retry"
    if state.get("target_index", 0) + 1 < len(state["route"].targets):
        return "fallback"
    return "fail"


async def after_deliver(state: PipelineState) -> Literal["settle", "relay"]:
    live_stream = state.get("stream") is not None and state.get("cached") is None
    return "relay" if live_stream else "settle"


def _node(name: str, fn: NodeFn) -> Node:
    """Each node gets a span when tracing is on (a flag check otherwise)."""
    return Node(traced_node(name, fn))


REQUEST = Flow(
    name="prism",
    state=PipelineState,
    context=PipelineContext,
    nodes={
        "admit": _node("admit", admit),
        "intent": _node("intent", intent),
        "router": _node("router", route),
        "guard_input": _node("guard_input", guard_input),
        "gate": _node("gate", gate),
        "call_model": _node("call_model", call_model),
        "fallback": _node("fallback", fallback),
        "tools": _node("tools", run_tools),
        "regenerate": _node("regenerate", regenerate),
        "guard_output": _node("guard_output", guard_output),
        "shadow": _node("shadow", shadow),
        "deliver": _node("deliver", deliver),
        "settle": _node("settle", settle),
    },
    edges=[
        (START, "admit"),
        ("admit", "intent"),
        ("intent", "router"),
        ("guard_input", "gate"),
        ("fallback", "call_model"),
        ("regenerate", "call_model"),
        ("shadow", "deliver"),
        ("settle", END),
    ],
    branches={
        "router": Branch(after_router, {"ok": "guard_input", "refused": "gate"}),
        "gate": Branch(after_gate, {"hit": "deliver", "go": "call_model", "refused": "settle"}),
        "call_model": Branch(
            after_call,
            {
                "ok": "guard_output",
                "tools": "tools",
                "retry": "call_model",
                "fallback": "fallback",
                "fail": "settle",
            },
        ),
        "tools": Branch(after_tools, {"call": "call_model", "stop": "guard_output"}),
        "guard_output": Branch(
            after_output_guard,
            {"shadow": "shadow", "deliver": "deliver", "regenerate": "regenerate", "fail": "settle"},
        ),
        "deliver": Branch(after_deliver, {"settle": "settle", "relay": END}),
    },
)

DECIDE = Flow(
    name="prism-decide",
    state=PipelineState,
    context=PipelineContext,
    nodes={"intent": REQUEST.nodes["intent"], "router": REQUEST.nodes["router"]},
    edges=[(START, "intent"), ("intent", "router"), ("router", END)],
)
"""The routing part of ``REQUEST``, for ``/v1/route/explain``: the same nodes, no admission, no call."""


def build_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """``REQUEST`` as a compiled LangGraph ``StateGraph`` (``docs/graph.md`` draws it)."""
    return compile_langgraph(REQUEST)


def build_runner(engine: Engine = "direct", flow: Flow = REQUEST) -> Runner:
    return FastRunner(flow) if engine == "direct" else PregelRunner(flow)


TOOL_LOOP_STEPS = 2 * 64 + 48
"""Steps of the longest tool loop (``tools.loop.max_rounds`` ≤ 64: a call and a tools step per
round) plus the rest of the table with its retries and fallbacks."""


def build_tool_runner() -> Runner:
    """``REQUEST`` on LangGraph's Pregel runtime, for requests with server tools (docs/graph.md,
    "Two runtimes": a tool loop lives for seconds, so the runtime's ~2 ms per request is noise)."""
    return PregelRunner(REQUEST, recursion_limit=TOOL_LOOP_STEPS)
