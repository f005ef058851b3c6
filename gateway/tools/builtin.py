"""The registry of built-in tools for a ``tools:`` config section (built once, in the lifespan)."""

from __future__ import annotations

from gateway.config.tools import ToolsConfig
from gateway.tools.base import Tool
from gateway.tools.calculator import Calculator
from gateway.tools.clock import Clock
from gateway.tools.python_exec import PythonTool
from gateway.tools.registry import ToolRegistry


def build_registry(config: ToolsConfig | None = None) -> ToolRegistry:
    """The enabled built-ins. Call ``await registry.probe()`` before offering them: it leaves out
    the Python tool when the sandbox cannot be set up on this machine (fail closed)."""
    config = config or ToolsConfig()
    available: dict[str, Tool] = {
        "calculator": Calculator(config.calculator),
        "datetime": Clock(),
        "python": PythonTool(config.sandbox, max_stream_chars=config.max_result_chars // 3),
    }
    return ToolRegistry([available[name] for name in config.enabled], config=config)
