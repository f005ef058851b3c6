"""``Guardrails``: the facade the gateway's guard_input / guard_output nodes call."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.config.guardrails import DenyPattern, GuardPolicy, GuardrailsConfig, OutputPolicy
from gateway.guardrails.injection import InjectionDetector
from gateway.guardrails.learned import LearnedInjectionModel, default_model
from gateway.guardrails.masking import MaskTable
from gateway.guardrails.output import OutputFilter, StreamOutputGuard
from gateway.guardrails.pii import PiiDetector, PiiMatch, replace_spans
from gateway.guardrails.verdict import Decision, InputVerdict, OutputVerdict


def _text_slots(msg: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(container, key) pairs holding text in a (copied) chat message."""
    slots: list[tuple[Any, Any]] = []
    content = msg.get("content")
    if isinstance(content, str):
        slots.append((msg, "content"))
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                slots.append((part, "text"))
    tool_calls = msg.get("tool_calls")
    if isinstance(tool_calls, list):
        for tc in tool_calls:
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                slots.append((fn, "arguments"))
    return slots


class Guardrails:
    def __init__(
        self, config: GuardrailsConfig, *, injection_model: LearnedInjectionModel | None = None
    ) -> None:
        """``injection_model``: the learned injection scorer; default: the packaged one, loaded only when a
        policy enables it."""
        self.config = config
        policies = (config.local, config.external, *config.models.values())
        if injection_model is None and any(p.enabled and p.injection.learned for p in policies):
            injection_model = default_model()
        self.injection = InjectionDetector(injection_model)
        self.pii = PiiDetector()
        self._deny_cache: dict[tuple[str, bool], re.Pattern[str]] = {}
        for pol in (config.local, config.external, *config.models.values()):
            self._compile_deny(pol.output)

    def policy_for(self, *, model: str, is_local: bool) -> GuardPolicy:
        return self.config.policy_for(model=model, is_local=is_local)

    def _compile_deny(self, policy: OutputPolicy) -> list[tuple[DenyPattern, re.Pattern[str]]]:
        out: list[tuple[DenyPattern, re.Pattern[str]]] = []
        for dp in policy.deny_patterns:
            key = (dp.pattern, dp.ignore_case)
            rx = self._deny_cache.get(key)
            if rx is None:
                rx = re.compile(dp.pattern, re.IGNORECASE if dp.ignore_case else 0)
                self._deny_cache[key] = rx
            out.append((dp, rx))
        return out

    # ------------------------------------------------------------------ input
    def check_input(self, messages: Sequence[Mapping[str, Any]], *, policy: GuardPolicy) -> InputVerdict:
        t0 = time.perf_counter()
        masks = MaskTable()
        out_msgs: list[dict[str, Any]] = []
        for msg in messages:
            out_msgs.append(copy.deepcopy(dict(msg)) if isinstance(msg, Mapping) else {"content": None})
        if not policy.enabled:
            return InputVerdict("allow", 0.0, (), frozenset(), frozenset(), out_msgs, masks)

        score = 0.0
        rules_score = 0.0
        learned_score: float | None = None
        reasons: list[str] = []
        detected: set[str] = set()
        masked: set[str] = set()
        flagged: set[str] = set()
        blocked: set[str] = set()
        inj = policy.injection

        for msg in out_msgs:
            role = str(msg.get("role") or "user")
            slots = _text_slots(msg)
            if not slots:
                continue
            if role in inj.roles:
                texts = [c[k] for c, k in slots if k != "arguments"]
                if texts:
                    res = self.injection.score(
                        "\n".join(texts), role=role, learned=inj.learned and role in inj.learned_roles
                    )
                    if res.score > score:
                        score = res.score
                    own = res.rules_score if res.rules_score is not None else res.score
                    rules_score = max(rules_score, own)
                    if res.learned_score is not None and (
                        learned_score is None or res.learned_score > learned_score
                    ):
                        learned_score = res.learned_score
                    reasons.extend(r for r in res.reasons if r not in reasons)
            for container, key in slots:
                text: str = container[key]
                matches = self.pii.detect(text)
                if not matches:
                    continue
                to_mask: list[PiiMatch] = []
                for m in matches:
                    detected.add(m.category)
                    pii_action = policy.pii_action(m.category)
                    if pii_action == "mask":
                        to_mask.append(m)
                        masked.add(m.category)
                    else:
                        masks.note_passed(m)
                        if pii_action == "block":
                            blocked.add(m.category)
                        elif pii_action == "flag":
                            flagged.add(m.category)
                if to_mask:
                    container[key] = replace_spans(text, to_mask, masks.placeholder_for)

        injection_action = inj.action if score >= inj.threshold and score > 0 else None
        if (
            injection_action == "block"
            and rules_score < inj.threshold
            and learned_score is not None
            and learned_score < inj.learned_block_at
        ):
            injection_action = "flag"  # the learned scorer alone, below its blocking band
        action: Decision = "allow"
        block_reason: str | None = None
        if injection_action == "block":
            action, block_reason = "block", "prompt_injection_detected"
        elif blocked:
            action, block_reason = "block", "pii_blocked"
        elif injection_action == "flag" or flagged:
            action = "flag"
        return InputVerdict(
            action=action,
            injection_score=score,
            reasons=tuple(reasons) if injection_action is not None else (),
            pii_detected=frozenset(detected),
            pii_masked=frozenset(masked),
            messages=out_msgs,
            masks=masks,
            block_reason=block_reason,
            injection_action=injection_action,
            pii_flagged=frozenset(flagged),
            pii_blocked=frozenset(blocked),
            elapsed_ms=(time.perf_counter() - t0) * 1000.0,
            injection_learned_score=learned_score,
        )

    # ----------------------------------------------------------------- output
    def _filter(self, policy: GuardPolicy, masks: MaskTable) -> OutputFilter:
        return OutputFilter(self.pii, policy.output, masks, self._compile_deny(policy.output))

    def check_output(self, text: str, *, policy: GuardPolicy, masks: MaskTable) -> OutputVerdict:
        verdict = OutputVerdict()
        if not text:
            return verdict
        flt = self._filter(policy, masks)
        redacted = flt.apply(text, flt.find(text), verdict) if policy.enabled else text
        verdict.text = "" if verdict.blocked else flt.unmask(redacted, verdict)
        return verdict

    def stream_output(self, *, policy: GuardPolicy, masks: MaskTable, window: int = 64) -> StreamOutputGuard:
        out_policy = policy.output if policy.enabled else policy.output.model_copy(update={"enabled": False})
        return StreamOutputGuard(self._filter(policy, masks), masks, policy=out_policy, window=window)
