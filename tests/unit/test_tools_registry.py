"""The tool registry: the OpenAI spec shape, argument parsing, timeout, size limit, metrics, span, logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import REGISTRY

from gateway.config.routing import ConfigError, parse_config
from gateway.config.settings import Settings
from gateway.config.tools import ToolsConfig
from gateway.observability import tracing
from gateway.tools import registry as registry_module
from gateway.tools.base import ToolError
from gateway.tools.builtin import build_registry
from gateway.tools.calculator import Calculator
from gateway.tools.registry import ToolRegistry


class SlowTool:
    name = "slow"
    description = "Sleeps."
    parameters: Mapping[str, Any] = {"type": "object", "properties": {}}

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return {}


class ChattyTool:
    name = "chatty"
    description = "Says a lot."
    parameters: Mapping[str, Any] = {"type": "object", "properties": {}}

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return {"text": "word " * 10_000}


class BrokenTool:
    name = "broken"
    description = "Has a bug."
    parameters: Mapping[str, Any] = {"type": "object", "properties": {}}

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        raise KeyError("secret-internal-detail")


class FailingTool:
    name = "failing"
    description = "Fails cleanly."
    parameters: Mapping[str, Any] = {"type": "object", "properties": {}}

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        raise ToolError("execution_error", "no such thing", details={"hint": "try another"})


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing(Settings(), exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown_tracing()


def _count(tool: str, status: str) -> float:
    return REGISTRY.get_sample_value("prism_tool_calls_total", {"tool": tool, "status": status}) or 0.0


def test_specs_are_openai_function_tools() -> None:
    registry = build_registry()
    specs = registry.specs()
    assert [spec["function"]["name"] for spec in specs] == ["calculator", "datetime", "python"]
    for spec in specs:
        assert spec["type"] == "function"
        assert set(spec["function"]) == {"name", "description", "parameters"}
        parameters = spec["function"]["parameters"]
        assert parameters["type"] == "object" and parameters["additionalProperties"] is False
        assert parameters["required"]
    assert registry.specs(["datetime", "nope"]) == [specs[1]]
    json.dumps(specs)  # serialisable as sent to a model


def test_config_section_is_validated_and_unknown_tools_refused() -> None:
    models = "models:\n  m: {provider: mock}\n"
    config = parse_config(models + "tools:\n  timeout_s: 3\n  sandbox: {memory_mb: 128, max_processes: 8}\n")
    assert config.tools.timeout_s == 3 and config.tools.sandbox.memory_mb == 128
    assert parse_config("models:\n  m: {provider: mock}\n").tools == ToolsConfig()
    with pytest.raises(ConfigError, match=r"prism\.yaml:4: tools\.sandbox\.memory_mb"):
        parse_config("models:\n  m: {provider: mock}\ntools:\n  sandbox: {memory_mb: 1}\n")
    with pytest.raises(ConfigError, match=r"tools\.enabled"):
        parse_config("models:\n  m: {provider: mock}\ntools:\n  enabled: [calculator, web_search]\n")
    with pytest.raises(ValueError, match="two tools"):
        ToolRegistry([Calculator(), Calculator()])


async def test_a_call_counts_logs_and_traces(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ToolRegistry([Calculator()])
    before = _count("calculator", "ok")
    # The module's logger, recorded: structlog caches bound loggers on first use, so neither capsys
    # nor capture_logs sees the event when an earlier test in the session configured logging.
    logged: list[dict[str, Any]] = []
    recorder = SimpleNamespace(info=lambda event, **fields: logged.append({"event": event, **fields}))
    monkeypatch.setattr(registry_module, "log", recorder)
    result = await registry.call("calculator", '{"expression": "6*7"}', call_id="call_abc")
    assert result.ok and json.loads(result.content)["result"] == "42"
    assert _count("calculator", "ok") == before + 1
    (span,) = spans.get_finished_spans()
    assert span.name == "execute_tool calculator"
    assert span.attributes is not None
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["gen_ai.tool.name"] == "calculator"
    assert span.attributes["gen_ai.tool.call.id"] == "call_abc"
    assert span.status.status_code is StatusCode.UNSET
    (event,) = [e for e in logged if e["event"] == "tool_call"]
    assert event["call_id"] == "call_abc" and event["status"] == "ok"


async def test_errors_are_results_with_codes(spans: InMemorySpanExporter) -> None:
    registry = ToolRegistry([Calculator(), FailingTool(), BrokenTool()])
    before = _count("calculator", "invalid_arguments")
    bad_json = await registry.call("calculator", "{not json", call_id="c1")
    assert bad_json.error_code == "invalid_arguments" and "not valid JSON" in (bad_json.error_message or "")
    assert _count("calculator", "invalid_arguments") == before + 1
    not_object = await registry.call("calculator", "[1]", call_id="c2")
    assert not_object.error_code == "invalid_arguments"
    unknown = await registry.call("rm_rf", "{}", call_id="c3")
    assert unknown.error_code == "unknown_tool" and _count("other", "unknown_tool") >= 1
    failing = await registry.call("failing", "{}", call_id="c4")
    assert json.loads(failing.content) == {
        "error": {"code": "execution_error", "message": "no such thing", "hint": "try another"}
    }
    broken = await registry.call("broken", "{}", call_id="c5")
    assert broken.error_code == "internal_error" and "secret-internal-detail" not in broken.content
    error_spans = [s for s in spans.get_finished_spans() if s.status.status_code is StatusCode.ERROR]
    assert len(error_spans) == 5
    assert {s.attributes["error.type"] for s in error_spans if s.attributes} == {
        "invalid_arguments",
        "unknown_tool",
        "execution_error",
        "internal_error",
    }


async def test_timeout_stops_the_tool() -> None:
    slow = SlowTool()
    registry = ToolRegistry([slow], config=ToolsConfig(timeout_s=0.05))
    result = await registry.call("slow", "{}", call_id="c1")
    assert result.error_code == "timeout" and "0.05 s" in (result.error_message or "")
    assert slow.cancelled.is_set()


async def test_cancellation_propagates() -> None:
    slow = SlowTool()
    registry = ToolRegistry([slow])
    task = asyncio.create_task(registry.call("slow", "{}", call_id="c1"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slow.cancelled.is_set()


async def test_results_are_cut_to_the_limit_as_valid_json() -> None:
    registry = ToolRegistry([ChattyTool()], config=ToolsConfig(max_result_chars=1000))
    result = await registry.call("chatty", {}, call_id="c1")
    assert result.ok and result.truncated and len(result.content) <= 1000
    cut = json.loads(result.content)
    assert cut["truncated"] is True and cut["partial"].startswith('{"text":"word word')


async def test_long_arguments_are_refused_before_parsing() -> None:
    registry = ToolRegistry([Calculator()], config=ToolsConfig(max_argument_chars=256))
    result = await registry.call("calculator", json.dumps({"expression": "1+" * 200 + "1"}), call_id="c1")
    assert result.error_code == "invalid_arguments" and "longer than 256" in (result.error_message or "")
