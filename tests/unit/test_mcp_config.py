"""The ``tools.mcp_servers`` / ``tools.mcp_endpoint`` config and the /mcp tool filter (no servers)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config.tools import McpServerConfig, ToolsConfig
from gateway.security.principal import Principal, Role
from gateway.tools.builtin import build_registry
from gateway.tools.mcp_client import prism_name
from gateway.tools.mcp_serve import tools_for_principal

STDIO: dict[str, Any] = {"name": "fs", "transport": "stdio", "command": "mcp-fs"}
HTTP: dict[str, Any] = {"name": "search", "transport": "streamable_http", "url": "https://mcp.internal/mcp"}


def test_both_transports_parse_with_safe_defaults() -> None:
    stdio = McpServerConfig.model_validate(STDIO | {"env": {"TOKEN": "PRISM_FS_TOKEN"}})
    http = McpServerConfig.model_validate(HTTP | {"headers": {"Authorization": "PRISM_SEARCH_AUTH"}})
    assert stdio.timeout_s == 30 and stdio.max_tools == 64 and stdio.display == "fs"
    assert http.headers == {"Authorization": "PRISM_SEARCH_AUTH"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (STDIO | {"env": {"TOKEN": "ghp_secretvalue123"}}, "must name an environment variable"),
        (HTTP | {"headers": {"Authorization": "Bearer abc"}}, "must name an environment variable"),
        ({"name": "fs", "transport": "stdio"}, "needs a command"),
        ({"name": "s", "transport": "streamable_http"}, "needs a url"),
        (STDIO | {"url": "http://x/mcp"}, "url and headers are for streamable_http"),
        (HTTP | {"command": "x"}, "command, args and env are for stdio"),
        (STDIO | {"name": "Has__Underscores"}, "name"),
        (HTTP | {"url": "ftp://x"}, "url"),
        (STDIO | {"timeout_s": 0}, "timeout_s"),
        (STDIO | {"unknown": 1}, "unknown"),
    ],
)
def test_bad_server_entries_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        McpServerConfig.model_validate(raw)


def test_two_servers_of_one_name_are_refused() -> None:
    with pytest.raises(ValidationError, match="two MCP servers are named 'fs'"):
        ToolsConfig.model_validate({"mcp_servers": [STDIO, STDIO]})


def test_tool_names_are_namespaced_and_valid_function_names() -> None:
    assert prism_name("fs", "read_file") == "mcp__fs__read_file"
    assert prism_name("fs", "read.file/v2") == "mcp__fs__read_file_v2"
    assert prism_name("fs", "x" * 80) is None


def test_the_endpoint_hides_admin_only_tools_from_users() -> None:
    config = ToolsConfig.model_validate(
        {"enabled": ["calculator", "datetime"], "mcp_endpoint": {"admin_only": ["date*"]}}
    )
    registry = build_registry(config)
    user = Principal(user_id="u", role=Role.USER)
    admin = Principal(user_id="a", role=Role.ADMIN)
    assert tools_for_principal(user, config, registry) == ["calculator"]
    assert tools_for_principal(admin, config, registry) == ["calculator", "datetime"]
