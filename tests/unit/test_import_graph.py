"""Import rules between the top-level packages of ``gateway`` (docs/architecture.md).

The graph is built from the source with ``ast``, so it counts every import: module level,
function level and ``if TYPE_CHECKING:`` alike. A node is a direct child of ``gateway``
(``gateway/cache/`` or ``gateway/runtime.py``); an edge ``a -> b`` means some module of ``a``
imports something of ``b``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"

Graph = dict[str, dict[str, list[str]]]
"""package -> imported package -> the ``path:line`` of each import."""


def _module_name(path: Path, root: Path = ROOT) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(path: Path, root: Path = ROOT) -> Iterator[tuple[str, int]]:
    """Every module named by an import statement anywhere in ``path`` (absolute dotted names)."""
    parts = _module_name(path, root)
    package = parts if path.name == "__init__.py" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module, node.lineno
            for alias in node.names:  # ``from gateway import cache`` imports a package
                yield f"{module}.{alias.name}", node.lineno


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "gateway" else None


def import_graph() -> Graph:
    graph: Graph = {}
    for path in sorted(GATEWAY.rglob("*.py")):
        source = _top(".".join(_module_name(path)))
        if source is None:  # gateway/__init__.py
            continue
        for module, line in _imported(path):
            target = _top(module)
            if target is not None and target != source:
                where = f"{path.relative_to(ROOT)}:{line}"
                places = graph.setdefault(source, {}).setdefault(target, [])
                if where not in places:
                    places.append(where)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    nodes = set(graph) | {target for targets in graph.values() for target in targets}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def _explain(graph: Graph, component: list[str]) -> str:
    members = set(component)
    return "\n".join(
        f"  {source} -> {target}: {', '.join(graph[source][target][:3])}"
        for source in component
        for target in sorted(graph.get(source, {}))
        if target in members
    )


def test_every_kind_of_import_is_seen(tmp_path: Path) -> None:
    """The builder itself: function-level, ``TYPE_CHECKING`` and relative imports are edges too."""
    module = tmp_path / "gateway" / "routing" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import gateway.db.engine\n"
        "from gateway import cache\n"
        "from ..usage import record\n"
        "if TYPE_CHECKING:\n"
        "    from gateway.runtime import RuntimeSnapshot\n"
        "def later() -> None:\n"
        "    from gateway.experiments.sticky import bucket\n"
    )
    tops = {_top(name) for name, _line in _imported(module, tmp_path)} - {None}
    assert tops == {"db", "cache", "usage", "runtime", "experiments"}
    graph = import_graph()
    assert "services" in graph["api"]


def test_no_cycles_between_top_level_packages() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles between top-level packages:\n" + "\n".join(
        _explain(graph, component) for component in found
    )


def test_config_package_imports_nothing_else_from_gateway() -> None:
    """Feature packages import their config from ``gateway.config``; it depends on none of them."""
    assert import_graph().get("config", {}) == {}


def test_routers_never_use_repositories() -> None:
    """Routers call services; SQL and repositories stay below them (STYLE.md, habit 6)."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((GATEWAY / "api").rglob("*.py"))
        for module, line in _imported(path)
        if module == "gateway.db.repositories" or module.startswith("gateway.db.repositories.")
    ]
    assert not offenders, offenders
