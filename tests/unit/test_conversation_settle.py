"""The conversation store is part of the flow's settle step: a complete answer (JSON, a live stream
after ``[DONE]``, a cached replay) is stored once with the text of choice 0; a cut stream is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from gateway.agent.graph import build_runner
from gateway.agent.guard import GuardService
from gateway.cache import MemoryResponseStore, ResponseCache
from gateway.cache.service import PipelineCache
from gateway.config.routing import CircuitBreakerConfig
from gateway.routing.circuit import CircuitBreakers
from gateway.runtime import ConfigHolder
from gateway.schemas.openai import ChatCompletionRequest
from gateway.security.principal import ANONYMOUS
from gateway.services.completion import CompletionService, CompletionServices, chat_input

CONFIG = """
models:
  fast: {provider: mock, tier: cheap, cache_ttl_s: 60}
  cut: {provider: mock, tier: cheap, mock: {cut_after_tokens: 2}}
cache: {enabled: true}
"""


class Sink:
    def __init__(self) -> None:
        self.stored: list[tuple[str | None, str | None]] = []

    async def __call__(self, *, answer: str | None, model: str | None) -> None:
        self.stored.append((answer, model))


def _service(tmp_path: Path) -> CompletionService:
    path = tmp_path / "prism.yaml"
    path.write_text(CONFIG)
    holder = ConfigHolder(path=path, clients=None, circuits=CircuitBreakers(CircuitBreakerConfig()))
    holder.load()
    return CompletionService(
        CompletionServices(
            holder=holder,
            graph=build_runner("direct"),
            guard=GuardService(),
            response_cache=PipelineCache(ResponseCache(MemoryResponseStore()), lambda: holder.current.config),
        )
    )


async def _ask(service: CompletionService, sink: Sink, **fields: Any) -> list[bytes] | dict[str, Any]:
    raw = {"messages": [{"role": "user", "content": "remember me"}], "temperature": 0, **fields}
    result = await service.run(
        chat=chat_input(ChatCompletionRequest.model_validate(raw), raw),
        principal=ANONYMOUS,
        request_id=f"r{len(sink.stored)}-{fields}",
        sticky={},
        conversation=sink,
    )
    if result.stream is not None:
        return [frame async for frame in result.stream]
    assert result.body is not None
    return result.body


def _text(frames: list[bytes]) -> str:
    parts = []
    for event in b"".join(frames).split(b"\n\n"):
        if event.startswith(b"data: {"):
            for choice in orjson.loads(event[6:]).get("choices") or []:
                parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


async def test_complete_answers_are_stored_once(tmp_path: Path) -> None:
    service, sink = _service(tmp_path), Sink()
    body = await _ask(service, sink, model="fast")
    assert isinstance(body, dict)
    assert sink.stored == [(body["choices"][0]["message"]["content"], "fast")]
    frames = await _ask(service, sink, model="fast", stream=True)  # a cached replay, as SSE
    assert isinstance(frames, list) and frames[-1].endswith(b"data: [DONE]\n\n")
    assert sink.stored[-1] == (_text(frames), "fast") and len(sink.stored) == 2
    live = await _ask(service, sink, model="fast", stream=True, max_tokens=3)  # not cached: live
    assert isinstance(live, list)
    assert sink.stored[-1] == (_text(live), "fast") and len(sink.stored) == 3


async def test_a_cut_stream_is_not_stored(tmp_path: Path) -> None:
    service, sink = _service(tmp_path), Sink()
    frames = await _ask(service, sink, model="cut", stream=True)
    assert isinstance(frames, list) and b"[DONE]" not in frames[-1]
    assert sink.stored == []
