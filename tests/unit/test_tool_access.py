"""Which server tools a request gets (``gateway/tools/access.py``): the route's offer, the request's
own references (``prism.<tool>`` functions and ``mcp`` entries), the key's and user's allow-lists."""

from __future__ import annotations

import pytest

from gateway.config.routing import RoutingConfig
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.security.principal import Principal
from gateway.tools.access import mcp_tool_name, split_tools, tools_for

AVAILABLE = (
    "calculator",
    "datetime",
    "python",
    mcp_tool_name("docs", "search"),
    mcp_tool_name("docs", "get"),
)
CONFIG = RoutingConfig.model_validate(
    {
        "models": {"m": {"provider": "mock", "tools": ["calculator"]}, "bare": {"provider": "mock"}},
        "aliases": {"a": {"target": "bare", "tools": ["datetime", "python"]}, "b": {"target": "m"}},
    }
)
ANYONE = Principal(user_id="u")


def _ref(name: str) -> dict[str, object]:
    return {"type": "function", "function": {"name": f"prism.{name}"}}


def test_route_offers_per_model_and_alias() -> None:
    assert tools_for(ANYONE, CONFIG, None, model="m", available=AVAILABLE) == ["calculator"]
    assert tools_for(ANYONE, CONFIG, None, model="b", available=AVAILABLE) == ["calculator"]  # its target's
    assert tools_for(ANYONE, CONFIG, None, model="a", available=AVAILABLE) == ["datetime", "python"]
    assert tools_for(ANYONE, CONFIG, None, model="bare", available=AVAILABLE) == []


def test_request_references_in_both_shapes() -> None:
    tools = [_ref("python"), {"type": "mcp", "server_label": "docs", "allowed_tools": ["search"]}]
    chosen = tools_for(ANYONE, CONFIG, tools, model="bare", available=AVAILABLE)
    assert chosen == ["python", "mcp__docs__search"]
    whole = [{"type": "mcp", "server_label": "docs"}]
    assert tools_for(ANYONE, CONFIG, whole, model="bare", available=AVAILABLE) == [
        "mcp__docs__get",
        "mcp__docs__search",
    ]
    builtins = [{"type": "mcp", "server_label": "prism"}]
    assert tools_for(ANYONE, CONFIG, builtins, model="bare", available=AVAILABLE) == [
        "calculator",
        "datetime",
        "python",
    ]


def test_client_tools_are_left_exactly_and_win_a_name_clash() -> None:
    own = {"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}}
    split = split_tools([own, _ref("datetime")])
    assert split.client == [own] and split.names == ["datetime"]
    assert tools_for(ANYONE, CONFIG, [own], model="m", available=AVAILABLE) == []  # the client's calculator


def test_allow_lists_like_allowed_models() -> None:
    key_only = Principal(user_id="u", allowed_tools=frozenset({"datetime"}))
    both = Principal(
        user_id="u", allowed_tools=frozenset({"datetime", "python"}), user_allowed_tools=frozenset({"python"})
    )
    assert tools_for(key_only, CONFIG, None, model="a", available=AVAILABLE) == [
        "datetime"
    ]  # quietly narrowed
    assert tools_for(both, CONFIG, None, model="a", available=AVAILABLE) == ["python"]  # the stricter wins
    with pytest.raises(PermissionDenied) as denied:
        tools_for(key_only, CONFIG, [_ref("python")], model="bare", available=AVAILABLE)
    assert denied.value.code == "tool_not_allowed"


def test_unknown_tools_are_refused() -> None:
    with pytest.raises(InvalidRequest) as unknown:
        tools_for(ANYONE, CONFIG, [_ref("nope")], model="bare", available=AVAILABLE)
    assert unknown.value.code == "unknown_tool"
    with pytest.raises(InvalidRequest):
        tools_for(
            ANYONE, CONFIG, [{"type": "mcp", "server_label": "nobody"}], model="bare", available=AVAILABLE
        )
