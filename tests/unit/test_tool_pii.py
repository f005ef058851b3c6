"""PII placeholders and server tools (issue #22, item 6; ``gateway/agent/nodes/tools.py``, "PII").

A tool's arguments get the user's values back only for the categories the tool's own policy lets
through; a tool result masked for the destination model shares the request's placeholders.
"""

from __future__ import annotations

import json

from gateway.agent.guard import GuardService
from gateway.agent.nodes.tools import _guard, _tool_arguments
from gateway.agent.state import RequestTrace
from gateway.config.guardrails import GuardrailsConfig
from gateway.guardrails import Guardrails, MaskTable
from gateway.guardrails.masking import shield, unshield

EMAIL = "kim.minji@example.com"
PHONE = "010-2345-6789"
OTHER = "park.jisoo@example.org"
CARD = "4111 1111 1111 1111"
CONFIG = GuardrailsConfig.model_validate(
    {
        "models": {"mcp__crm__*": {"pii_default": "allow"}},
        "local": {"pii_default": "allow", "pii": {"phone": "mask"}},
    }
)
GUARDRAILS = Guardrails(CONFIG)
EXTERNAL = GUARDRAILS.policy_for(model="gpt", is_local=False)


def _masked_request(text: str) -> tuple[str, MaskTable]:
    trace = RequestTrace(request_id="r1", started_at=0.0, deadline=0.0)
    guarded = GuardService().check_input(
        GUARDRAILS, [{"role": "user", "content": text}], policy=EXTERNAL, trace=trace, model="gpt"
    )
    return str(guarded.messages[0]["content"]), guarded.masks


def _call(name: str, **arguments: str) -> dict[str, object]:
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def test_a_tool_gets_the_values_its_own_policy_lets_through() -> None:
    masked, masks = _masked_request(f"mail {EMAIL} or call {PHONE}")
    assert masked == "mail <EMAIL_1> or call <PHONE_1>"
    call = _call("python", code='send("<EMAIL_1>", "<PHONE_1>")')
    # a built-in tool runs inside the gateway: the local policy (here: e-mail allowed, phones masked)
    code = json.loads(_tool_arguments(GUARDRAILS, masks, call))["code"]
    assert code == f'send("{EMAIL}", "<PHONE_1>")'
    # an MCP tool is outside: the external policy masks both, so it gets the placeholders
    outside = _call("mcp__mail__send", to="<EMAIL_1>", phone="<PHONE_1>")
    assert json.loads(_tool_arguments(GUARDRAILS, masks, outside)) == {
        "to": "<EMAIL_1>",
        "phone": "<PHONE_1>",
    }
    # ... unless a `guardrails.models` pattern names the tool
    crm = _call("mcp__crm__lookup", to="<EMAIL_1>", phone="<PHONE_1>")
    assert json.loads(_tool_arguments(GUARDRAILS, masks, crm)) == {"to": EMAIL, "phone": PHONE}


def test_a_masked_result_shares_the_request_placeholders() -> None:
    _masked, masks = _masked_request(f"who is {EMAIL}?")
    result = json.dumps({"owner": EMAIL, "manager": OTHER, "card": CARD, "note": "see <EMAIL_1>"})
    content, action = _guard(GUARDRAILS, EXTERNAL, result, masks)
    assert action == "mask"
    seen = json.loads(content)
    assert seen == {"owner": "<EMAIL_1>", "manager": "<EMAIL_2>", "card": "<CARD_1>", "note": "see <EMAIL_1>"}
    answer = masks.unmask(f"{seen['owner']} reports to {seen['manager']}; card {seen['card']}")
    # the user's own value and a new e-mail (output policy: flag) are restored; a new card number
    # (output policy: redact) is not
    assert answer == f"{EMAIL} reports to {OTHER}; card <CARD_1>"
    # the same value in a later result gets the same placeholder; a later tool may get it back
    again, _ = _guard(GUARDRAILS, EXTERNAL, json.dumps({"card": CARD}), masks)
    assert json.loads(again) == {"card": "<CARD_1>"}
    crm = _call("mcp__crm__charge", card="<CARD_1>")
    assert json.loads(_tool_arguments(GUARDRAILS, masks, crm)) == {"card": CARD}


def test_a_result_without_pii_is_untouched() -> None:
    _masked, masks = _masked_request(f"who is {EMAIL}?")
    assert _guard(GUARDRAILS, EXTERNAL, '{"note": "<EMAIL_1> is busy"}', masks) == (
        '{"note": "<EMAIL_1> is busy"}',
        "allow",
    )


def test_shield_round_trips_placeholders() -> None:
    text = "a <EMAIL_1> b <PHONE_12> c <not_one>"
    assert "<EMAIL_1>" not in shield(text) and unshield(shield(text)) == text
