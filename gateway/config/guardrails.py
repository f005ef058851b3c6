"""Pydantic v2 policy models, embedded in the routing YAML under ``guardrails:``.

``GuardrailsConfig.policy_for(model=..., is_local=...)`` picks a per-model
override (exact name first, then the first matching glob such as ``gpt-4o*``),
else ``local`` or ``external``. Unspecified fields take the defaults below, so a
YAML block only needs to state what differs.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PiiCategory = Literal[
    "email",
    "phone",
    "rrn",
    "credit_card",
    "bank_account",
    "iban",
    "passport",
    "driver_license",
    "ip_address",
    "secret",
]

InjectionAction = Literal["block", "flag", "allow"]
PiiAction = Literal["mask", "block", "flag", "allow"]
OutputAction = Literal["redact", "block", "flag", "allow"]


class InjectionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: InjectionAction = "block"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Roles whose content is scanned; system prompts are the operator's and trusted.
    roles: frozenset[str] = frozenset({"user", "tool", "function"})
    # The learned scorer (``gateway/guardrails/learned.py``) on top of the rules, for these roles. Not on
    # tool/function results by default: on documents it flags too many clean ones (docs/guardrails.md,
    # "Learned injection detector").
    learned: bool = True
    learned_roles: frozenset[str] = frozenset({"user"})
    # Where the learned scorer ALONE blocks (policy scale; 0.5 = its threshold). Between the threshold and
    # this, a prompt only the learned scorer caught is flagged (logged, counted, x-prism-guard), not
    # blocked: at 0.5, 6 of 656 ordinary routing prompts ("Do you like pizza?") crossed; at 0.7, none,
    # while 96-100 % of the public jailbreak sets stay above (docs/guardrails.md).
    learned_block_at: float = Field(default=0.7, ge=0.0, le=1.0)


class DenyPattern(BaseModel):
    """A regex the answer must not contain (e.g. internal hostnames, project code names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_\-]{1,40}$")
    pattern: str
    action: OutputAction = "block"
    ignore_case: bool = True

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from exc
        return v


def _default_output_pii() -> dict[PiiCategory, OutputAction]:
    return {"secret": "redact", "rrn": "redact", "credit_card": "redact"}


class OutputPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # Action for PII/secrets in the answer that did NOT come from the request; missing categories -> default.
    pii: dict[PiiCategory, OutputAction] = Field(default_factory=_default_output_pii)
    pii_default: OutputAction = "flag"
    deny_patterns: tuple[DenyPattern, ...] = ()
    unmask: bool = True  # restore placeholders from the input masking

    def action_for(self, category: str) -> OutputAction:
        return self.pii.get(category, self.pii_default)  # type: ignore[call-overload, no-any-return]


class GuardPolicy(BaseModel):
    """Guard policy for one destination.

    - ``injection``: action + threshold for prompt-injection (score 0..1).
    - ``pii``: per-category input action; categories not listed use ``pii_default``.
      ``mask`` swaps values for placeholders (restored in the answer), ``block``
      rejects the request, ``flag`` passes and reports, ``allow`` passes (still reported
      in ``pii_detected``).
    - ``output``: answer filtering (see ``OutputPolicy``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    injection: InjectionPolicy = Field(default_factory=InjectionPolicy)
    pii: dict[PiiCategory, PiiAction] = Field(default_factory=dict)
    pii_default: PiiAction = "mask"
    output: OutputPolicy = Field(default_factory=OutputPolicy)

    def pii_action(self, category: str) -> PiiAction:
        return self.pii.get(category, self.pii_default)  # type: ignore[call-overload, no-any-return]


def _default_local() -> GuardPolicy:
    return GuardPolicy(pii_default="allow")


def _default_external() -> GuardPolicy:
    return GuardPolicy(pii_default="mask")


class GuardrailsConfig(BaseModel):
    """Shipped default: block injection everywhere, mask PII before external providers, allow to local."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    local: GuardPolicy = Field(default_factory=_default_local)
    external: GuardPolicy = Field(default_factory=_default_external)
    models: dict[str, GuardPolicy] = Field(default_factory=dict)

    def policy_for(self, *, model: str, is_local: bool) -> GuardPolicy:
        exact = self.models.get(model)
        if exact is not None:
            return exact
        for pattern, pol in self.models.items():
            if fnmatch.fnmatchcase(model, pattern):
                return pol
        return self.local if is_local else self.external
