"""The tool loop's bounds and its guard of tool results (``gateway/agent/nodes/tools.py``), unit by
unit; the loop itself is exercised over HTTP in ``tests/integration/test_tool_loop_http.py``."""

from __future__ import annotations

import json

import pytest

from gateway.agent.nodes.tools import NOTICE_INJECTION, NOTICE_PII, _bound, _guard
from gateway.agent.state import ToolLoopBooks
from gateway.config.guardrails import GuardrailsConfig
from gateway.config.tools import LoopConfig
from gateway.guardrails import Guardrails
from gateway.providers.base import Usage
from tests.fakes.tool_model import INJECTION

GUARDRAILS = Guardrails(GuardrailsConfig())


@pytest.mark.parametrize(
    ("config", "books", "outcome"),
    [
        (LoopConfig(max_rounds=2), ToolLoopBooks(rounds=1), None),
        (LoopConfig(max_rounds=2), ToolLoopBooks(rounds=2), "max_rounds"),
        (
            LoopConfig(max_total_tokens=100),
            ToolLoopBooks(usage=Usage(prompt_tokens=60, completion_tokens=30)),
            None,
        ),
        (
            LoopConfig(max_total_tokens=100),
            ToolLoopBooks(usage=Usage(prompt_tokens=60, completion_tokens=40)),
            "budget",
        ),
        (LoopConfig(max_cost_usd=0.01), ToolLoopBooks(cost_usd=0.02), "budget"),
    ],
)
def test_bounds(config: LoopConfig, books: ToolLoopBooks, outcome: str | None) -> None:
    assert _bound(config, books) == outcome


def test_an_injection_in_a_result_becomes_the_notice() -> None:
    policy = GUARDRAILS.policy_for(model="m", is_local=False)
    assert _guard(GUARDRAILS, policy, json.dumps({"stdout": INJECTION}), None) == (
        NOTICE_INJECTION,
        "injection",
    )
    assert _guard(GUARDRAILS, policy, '{"result": "42"}', None) == ('{"result": "42"}', "allow")


def test_pii_in_a_result_follows_the_destination_policy() -> None:
    external = GUARDRAILS.policy_for(model="m", is_local=False)  # default: mask before external models
    masked, action = _guard(GUARDRAILS, external, '{"email": "kim.minji@example.com"}', None)
    assert action == "mask" and "kim.minji@example.com" not in masked
    blocking = Guardrails(GuardrailsConfig.model_validate({"external": {"pii": {"email": "block"}}}))
    policy = blocking.policy_for(model="m", is_local=False)
    assert _guard(blocking, policy, '{"email": "kim.minji@example.com"}', None) == (NOTICE_PII, "pii")
