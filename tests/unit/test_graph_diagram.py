"""The README's flow diagram is the compiled graph itself: ``docs/graph.md`` must match it."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.agent.graph import build_graph

DOC = Path(__file__).resolve().parents[2] / "docs" / "graph.md"
HEADER = (
    "# The request graph\n\n"
    "Rendered from `gateway.agent.graph.build_graph()` by `tests/unit/test_graph_diagram.py`;\n"
    "regenerate with `PRISM_UPDATE_GRAPH=1 make unit`.\n\n"
)


def render() -> str:
    mermaid = build_graph().get_graph().draw_mermaid()
    return f"{HEADER}```mermaid\n{mermaid.rstrip()}\n```\n"


def test_committed_diagram_matches_the_graph() -> None:
    expected = render()
    if os.environ.get("PRISM_UPDATE_GRAPH") == "1":
        DOC.write_text(expected, encoding="utf-8")
    assert DOC.exists(), "docs/graph.md is missing: run PRISM_UPDATE_GRAPH=1 make unit"
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/graph.md is stale: run PRISM_UPDATE_GRAPH=1 make unit"
    )


def test_graph_has_the_documented_loops() -> None:
    graph = build_graph().get_graph()
    edges = {(edge.source, edge.target) for edge in graph.edges}
    assert ("call_model", "call_model") in edges  # retry loop
    assert ("call_model", "fallback") in edges and ("fallback", "call_model") in edges
    assert ("admit", "format") in edges  # cache hit short-cut
    assert ("guard_output", "shadow") in edges
