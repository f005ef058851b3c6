"""Verdict objects: what a check decided, safe to put in headers, metrics and logs (never values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.guardrails.masking import MaskTable

Decision = Literal["allow", "flag", "block"]
_STRENGTH = {"allow": 0, "flag": 1, "redact": 2, "block": 3}


def _cats(xs: frozenset[str]) -> str:
    return ",".join(sorted(xs))


@dataclass(frozen=True, slots=True)
class InputVerdict:
    action: Decision
    injection_score: float
    reasons: tuple[str, ...]
    pii_detected: frozenset[str]
    pii_masked: frozenset[str]
    messages: list[dict[str, Any]]
    masks: MaskTable
    block_reason: str | None = None
    injection_action: str | None = None  # "block"/"flag"/"allow" when the score crossed the threshold
    pii_flagged: frozenset[str] = frozenset()
    pii_blocked: frozenset[str] = frozenset()
    elapsed_ms: float = 0.0
    injection_learned_score: float | None = None  # the learned scorer's highest score; None: it did not run

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def header_value(self) -> str:
        """e.g. ``action=flag;injection=flag;reasons=override;pii=email,phone;masked=email``."""
        parts = [f"action={self.action}"]
        if self.injection_action is not None:
            parts.append(f"injection={self.injection_action}")
            parts.append("reasons=" + ",".join(self.reasons))
        if self.pii_detected:
            parts.append(f"pii={_cats(self.pii_detected)}")
        if self.pii_masked:
            parts.append(f"masked={_cats(self.pii_masked)}")
        if self.pii_blocked:
            parts.append(f"blocked={_cats(self.pii_blocked)}")
        return ";".join(parts)

    def as_log_fields(self) -> dict[str, Any]:
        return {
            "guard_stage": "input",
            "guard_action": self.action,
            "guard_block_reason": self.block_reason,
            "injection_score": round(self.injection_score, 3),
            "injection_action": self.injection_action,
            "injection_reasons": list(self.reasons),
            "injection_learned_score": (
                None if self.injection_learned_score is None else round(self.injection_learned_score, 3)
            ),
            "pii_detected": sorted(self.pii_detected),
            "pii_masked": sorted(self.pii_masked),
            "pii_flagged": sorted(self.pii_flagged),
            "pii_blocked": sorted(self.pii_blocked),
            "placeholders": len(self.masks),
            "guard_ms": round(self.elapsed_ms, 3),
        }

    def metric_labels(self) -> list[tuple[str, str]]:
        """(category, action) pairs for ``prism_guard_actions{stage="input"}``."""
        out: list[tuple[str, str]] = []
        if self.injection_action is not None:
            out.append(("injection", self.injection_action))
            if "learned" in self.reasons:  # the learned scorer crossed its threshold (alone or with rules)
                out.append(("injection_learned", self.injection_action))
        for c in sorted(self.pii_detected):
            if c in self.pii_blocked:
                out.append((c, "block"))
            elif c in self.pii_masked:
                out.append((c, "mask"))
            elif c in self.pii_flagged:
                out.append((c, "flag"))
            else:
                out.append((c, "allow"))
        return out


@dataclass(slots=True)
class OutputVerdict:
    action: Decision = "allow"
    text: str = ""
    pii_detected: set[str] = field(default_factory=set)
    redacted: set[str] = field(default_factory=set)
    flagged: set[str] = field(default_factory=set)
    deny_matched: set[str] = field(default_factory=set)
    block_reason: str | None = None
    unmasked: int = 0
    # strongest action taken per hit kind: a PII category or "deny:<pattern name>"
    actions: dict[str, str] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def note(self, kind: str, action: str) -> None:
        """Remember the strongest action taken for ``kind`` (for metric labels)."""
        previous = self.actions.get(kind)
        if previous is None or _STRENGTH.get(action, 0) > _STRENGTH.get(previous, 0):
            self.actions[kind] = action

    def escalate(self, action: str, reason: str | None = None) -> None:
        if action == "block":
            if self.action != "block":
                self.action = "block"
                self.block_reason = reason
        elif action in ("flag", "redact") and self.action == "allow":
            self.action = "flag"

    def header_value(self) -> str:
        """e.g. ``output=flag;pii=secret;redacted=secret;deny=internal_host``."""
        parts = [f"output={self.action}"]
        if self.pii_detected:
            parts.append(f"pii={_cats(frozenset(self.pii_detected))}")
        if self.redacted:
            parts.append(f"redacted={_cats(frozenset(self.redacted))}")
        if self.deny_matched:
            parts.append(f"deny={_cats(frozenset(self.deny_matched))}")
        return ";".join(parts)

    def as_log_fields(self) -> dict[str, Any]:
        return {
            "guard_stage": "output",
            "guard_action": self.action,
            "guard_block_reason": self.block_reason,
            "pii_detected": sorted(self.pii_detected),
            "pii_redacted": sorted(self.redacted),
            "pii_flagged": sorted(self.flagged),
            "deny_matched": sorted(self.deny_matched),
            "placeholders_restored": self.unmasked,
        }

    def metric_labels(self) -> list[tuple[str, str]]:
        """(category, action) pairs for ``prism_guard_actions{stage="output"}``; deny patterns
        count under the category ``deny_pattern`` (their names are in the header and the log)."""
        return sorted(
            ("deny_pattern" if kind.startswith("deny:") else kind, action)
            for kind, action in self.actions.items()
        )
