"""A real MCP server for the tests, built with the ``mcp`` SDK's ``MCPServer`` (FastMCP in mcp 1.x).

    python -m tests.fakes.mcp_server stdio                 # over stdin/stdout
    python -m tests.fakes.mcp_server http --fd N           # Streamable HTTP on an inherited socket

Tools: ``add`` (structured result), ``echo``, ``big`` (a long text), ``slow`` (sleeps), ``fail``
(a tool error), ``grow`` (registers ``late_tool`` and sends ``notifications/tools/list_changed``),
``crash`` (the process exits at once, mid-call), ``whoami`` (the marker in ``MCP_FAKE_MARKER``:
shows which environment the server got).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def build() -> MCPServer:
    server = MCPServer("prism-fake", version="1.0", log_level="WARNING")

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="A text of n characters.")
    def big(n: int) -> str:
        return "x" * n

    @server.tool(description="Sleep, then answer.")
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    @server.tool(description="Always fails.")
    def fail() -> str:
        raise ToolError("the fake tool failed on purpose")

    @server.tool(description="Exit the server process mid-call.")
    def crash() -> str:
        os._exit(3)

    @server.tool(description="The marker in the server's environment.")
    def whoami() -> str:
        return (
            os.environ.get("MCP_FAKE_MARKER", "unset")
            + " secret="
            + os.environ.get("GATEWAY_JWT_SECRET", "unset")
        )

    @server.tool(description="Register late_tool and tell the client the tool list changed.")
    async def grow(ctx: Context) -> str:
        def late_tool() -> str:
            return "late"

        server.add_tool(late_tool, description="Added at run time.")
        await ctx.request_context.session.send_tool_list_changed()
        return "grown"

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--fd", type=int)
    args = parser.parse_args()
    server = build()
    if args.transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    sock = socket.socket(fileno=args.fd)
    app = server.streamable_http_app(host="0.0.0.0")  # no DNS-rebinding check: tests use 127.0.0.1:<port>
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
