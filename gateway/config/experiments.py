"""The typed ``experiments:`` section of the routing config.

An experiment takes over one client-facing name (``alias``) and splits its traffic between
named arms; each arm is a model or a fallback chain. Assignment is sticky (user, api_key,
conversation or request) through a stable hash of ``experiment name + key`` mapped onto bucket
ranges in the arms' order, so a weight change at reload only moves the users at a boundary.

A canary is an experiment with a ``canary`` block: the canary arm's share follows ``steps``
(percent of traffic, advancing after a number of canary requests or seconds) and the roll-out is
rolled back automatically when the canary's error rate or p95 latency exceeds the control's by
the configured margin once both have ``min_samples`` outcomes in the window.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Sticky = Literal["user", "api_key", "conversation", "request"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArmConfig(_Strict):
    model: str | None = None
    """One model; or ``models`` for a chain (primary first, then fallbacks)."""
    models: list[str] | None = None
    weight: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _one_model(self) -> ArmConfig:
        if (self.model is None) == (self.models is None) or (self.models is not None and not self.models):
            raise ValueError("an arm needs exactly one of model or models (a non-empty list)")
        return self

    @property
    def chain(self) -> tuple[str, ...]:
        return (self.model,) if self.model is not None else tuple(self.models or ())


class CanaryStep(_Strict):
    percent: float = Field(ge=0, le=100)
    after_requests: int | None = Field(default=None, ge=1)
    """Advance once the canary arm has answered this many requests at this step."""
    after_s: float | None = Field(default=None, gt=0)
    """Advance once this step has lasted this many seconds (whichever of the two comes first)."""


class CanaryConfig(_Strict):
    arm: str
    """The arm being rolled out; the experiment's ``control`` gets the rest."""
    steps: list[CanaryStep] = Field(min_length=1)
    min_samples: int = Field(default=50, ge=1)
    """Outcomes needed in each arm's window before a rollback can be decided."""
    window: int = Field(default=500, ge=10)
    """Recent outcomes kept per arm for the health comparison."""
    max_error_rate_increase: float = Field(default=0.05, ge=0, le=1)
    """Roll back when canary error rate > control error rate + this (absolute)."""
    max_p95_latency_increase: float = Field(default=0.5, ge=0)
    """Roll back when canary p95 > control p95 × (1 + this) + ``latency_floor_ms``."""
    latency_floor_ms: float = Field(default=50.0, ge=0)


class ExperimentConfig(_Strict):
    alias: str
    """The model name clients send. If it is also an alias, the experiment takes precedence."""
    arms: dict[str, ArmConfig] = Field(min_length=1)
    control: str
    sticky: Sticky = "user"
    enabled: bool = True
    canary: CanaryConfig | None = None

    @model_validator(mode="after")
    def _arms(self) -> ExperimentConfig:
        if self.control not in self.arms:
            raise ValueError(f"control {self.control!r} is not one of the arms {sorted(self.arms)}")
        if self.canary is not None:
            if self.canary.arm not in self.arms or self.canary.arm == self.control:
                raise ValueError("canary.arm must be an arm other than the control")
            if len(self.arms) != 2:
                raise ValueError("a canary experiment has exactly two arms: control and canary")
        elif sum(arm.weight for arm in self.arms.values()) <= 0:
            raise ValueError("arm weights must sum to more than 0")
        return self

    @property
    def weights(self) -> dict[str, float]:
        return {name: arm.weight for name, arm in self.arms.items()}

    def models(self) -> set[str]:
        return {model for arm in self.arms.values() for model in arm.chain}


class ShadowJudgeConfig(_Strict):
    """``aliases.<name>.shadow_judge``: a configured model scores a sample of finished shadow pairs.

    Off the request path and bounded: a stable sample of the pairs where both answers succeeded,
    at most ``max_concurrent`` judge calls at once (more are dropped, ``reason=busy``), each under
    its own ``deadline_s``, and no more calls once ``spend_cap_usd`` was spent (per replica).
    """

    model: str
    """Any configured model, called through its provider (no retries, no fallbacks)."""
    sample_rate: float = Field(default=0.1, ge=0, le=1)
    max_concurrent: int = Field(default=2, ge=1, le=64)
    spend_cap_usd: float | None = Field(default=None, ge=0)
    deadline_s: float = Field(default=30.0, gt=0, le=600)
    max_chars: int = Field(default=4000, ge=100, le=100_000)
    """Head of the request and of each answer put into the judge's prompt."""
