"""Which server-side tools a request gets: the policy, in one place (docs/tools.md, "Which tools").

A request is offered the server tools that are

1. **offered by its route** — the alias's ``tools:`` list in the routing YAML, else its target
   model's ``tools:`` — *or named by the request itself* in one of the shapes clients already use:

   - ``{"type": "function", "function": {"name": "prism.calculator"}}`` — a function entry whose
     name is ``prism.<tool>`` (no parameters needed: Prism supplies the tool's schema);
   - ``{"type": "mcp", "server_label": "docs", "allowed_tools": ["search"]}`` — OpenAI's and
     LiteLLM's MCP tool entry: the tools of that MCP server (all of them without ``allowed_tools``);
     ``server_label: "prism"`` names the built-in tools;

2. **registered** in the process's :class:`~gateway.tools.registry.ToolRegistry` (and not left
   out by its probe), and
3. **allowed to the principal** — the key's and the user's ``allowed_tools`` lists, checked like
   ``allowed_models``: empty means no restriction, and both must allow a tool.

A client's own function tools are never touched; a client tool with the same name as a server
tool wins (that server tool is not offered to the request). A requested tool that is not offered
for one of the reasons above is refused with a 400 ``tool_not_allowed`` (never silently dropped),
so a client learns at once that its request cannot work as written.

MCP tools are registered under ``mcp__<server_label>__<tool>`` (:func:`mcp_tool_name`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.config.routing import RoutingConfig
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.security.principal import Principal

PREFIX = "prism."
"""A function tool named ``prism.<tool>`` refers to the server tool ``<tool>``."""
BUILTIN_LABEL = "prism"
"""The MCP ``server_label`` of the built-in tools."""
MCP_SEPARATOR = "__"


def mcp_tool_name(server_label: str, tool: str) -> str:
    """The registry name of tool ``tool`` of the MCP server ``server_label``."""
    return f"mcp{MCP_SEPARATOR}{server_label}{MCP_SEPARATOR}{tool}"


@dataclass(slots=True)
class RequestedTools:
    """A request's ``tools`` split into the client's own entries and references to server tools."""

    client: list[dict[str, Any]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    """Server tools named by the request (registry names), in order, without repeats."""
    servers: list[str] = field(default_factory=list)
    """MCP ``server_label``s named without ``allowed_tools`` (every tool of that server)."""

    @property
    def client_names(self) -> set[str]:
        return {str(t["function"].get("name")) for t in self.client if isinstance(t.get("function"), Mapping)}

    @property
    def empty(self) -> bool:
        return not self.names and not self.servers


def split_tools(tools: Sequence[Any] | None) -> RequestedTools:
    """Separate server tool references from the client's own tools (left exactly as sent)."""
    out = RequestedTools()
    for entry in tools or ():
        if not isinstance(entry, Mapping):
            continue
        kind = entry.get("type")
        if kind == "mcp":
            label = entry.get("server_label")
            if not isinstance(label, str) or not label:
                raise InvalidRequest("an mcp tool entry needs a server_label", param="tools")
            allowed = entry.get("allowed_tools")
            if allowed is None:
                out.servers.append(label)
                continue
            if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
                raise InvalidRequest("allowed_tools must be a list of tool names", param="tools")
            for tool in allowed:
                _add(out.names, tool if label == BUILTIN_LABEL else mcp_tool_name(label, tool))
            continue
        function = entry.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if kind == "function" and isinstance(name, str) and name.startswith(PREFIX):
            _add(out.names, name[len(PREFIX) :])
            continue
        out.client.append(dict(entry))
    return out


def _add(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


def route_tools(config: RoutingConfig, model: str) -> tuple[str, ...]:
    """The server tools the routing YAML offers to every request for ``model`` (alias or model)."""
    alias = config.aliases.get(model)
    if alias is not None:
        if alias.tools is not None:
            return alias.tools
        model = alias.target or ""
    found = config.models.get(model)
    return found.tools if found is not None else ()


def tools_for(
    principal: Principal,
    routing_config: RoutingConfig,
    requested: RequestedTools | Sequence[Any] | None,
    *,
    model: str | None = None,
    available: Iterable[str] = (),
) -> list[str]:
    """The server tools one request gets (module doc): the route's and the requested ones that are
    ``available`` (registered) and allowed to ``principal``. Raises ``PermissionDenied``
    (``tool_not_allowed``) for a *requested* tool the key/user may not use and ``InvalidRequest``
    (``unknown_tool``) for one that does not exist; route defaults the principal may not use are
    left out quietly (the operator's offer, not the client's ask)."""
    wanted = requested if isinstance(requested, RequestedTools) else split_tools(requested)
    offered = set(available)
    shadowed = wanted.client_names
    names: list[str] = []
    for name in route_tools(routing_config, model) if model is not None else ():
        if name in offered and principal.may_call(name) and name not in shadowed:
            _add(names, name)
    asked = list(wanted.names)
    for label in wanted.servers:
        prefix = mcp_tool_name(label, "")
        members = [
            n
            for n in sorted(offered)
            if (MCP_SEPARATOR not in n if label == BUILTIN_LABEL else n.startswith(prefix))
        ]
        if not members:
            raise InvalidRequest(
                f"no server tools are offered under server_label {label!r}",
                param="tools",
                code="unknown_tool",
            )
        asked.extend(n for n in members if principal.may_call(n))
    for name in asked:
        if name in shadowed:
            continue
        if name not in offered:
            raise InvalidRequest(
                f"there is no server tool named {name[:64]!r}", param="tools", code="unknown_tool"
            )
        if not principal.may_call(name):
            raise PermissionDenied(
                f"this principal's allowed_tools policy does not allow the tool {name[:64]!r}",
                param="tools",
                code="tool_not_allowed",
            )
        _add(names, name)
    return names
