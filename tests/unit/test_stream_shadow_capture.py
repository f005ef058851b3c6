"""A streamed primary's answer reaches its shadow pairs (issue #26: in a half-streamed run, every
streamed pair had no agreement score — the relayed text was captured after the shadows started)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.agent.graph import build_runner
from gateway.agent.guard import GuardService
from gateway.agent.shadow import ShadowDispatcher
from gateway.experiments.shadow import ShadowSide
from gateway.routing.circuit import CircuitBreakerConfig, CircuitBreakers
from gateway.runtime import ConfigHolder
from gateway.schemas.openai import ChatCompletionRequest
from gateway.security.principal import ANONYMOUS
from gateway.services.completion import CompletionService, CompletionServices, chat_input

CONFIG = """
models:
  primary: {provider: mock, tier: cheap}
  candidate: {provider: mock, tier: cheap}
aliases:
  chat: {target: primary, shadow: [candidate]}
"""


class RecordingShadows(ShadowDispatcher):
    """Notes the primary's side instead of starting shadow calls."""

    def __init__(self) -> None:
        super().__init__()
        self.launched: list[ShadowSide] = []

    def launch(self, pairs: Sequence[Any], primary: ShadowSide) -> None:
        self.launched.append(primary)


async def _answer(service: CompletionService, *, stream: bool) -> str:
    raw = {"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "tell me a story"}]}
    request = ChatCompletionRequest.model_validate(raw)
    result = await service.run(
        chat=chat_input(request, raw), principal=ANONYMOUS, request_id=f"r-{stream}", sticky={}
    )
    if result.stream is None:
        assert result.body is not None
        return str(result.body["choices"][0]["message"]["content"])
    async for _ in result.stream:
        pass
    return ""


async def test_streamed_and_plain_primaries_both_hand_their_text_to_the_shadows(tmp_path: Path) -> None:
    path = tmp_path / "prism.yaml"
    path.write_text(CONFIG)
    holder = ConfigHolder(path=path, clients=None, circuits=CircuitBreakers(CircuitBreakerConfig()))
    holder.load()
    shadows = RecordingShadows()
    service = CompletionService(
        CompletionServices(
            holder=holder,
            graph=build_runner("direct"),
            guard=GuardService(),
            shadow=shadows,
        )
    )
    plain = await _answer(service, stream=False)
    await _answer(service, stream=True)
    assert len(shadows.launched) == 2
    assert shadows.launched[0].text == plain
    assert shadows.launched[1].text == plain  # the mock answers the same prompt the same way
