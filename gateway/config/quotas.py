"""The ``quotas:`` section of the routing config: limits per tier and the limiter's failure mode.

The limiter that enforces them is ``gateway/cache/quota.py`` (algorithms in docs/cache-and-quotas.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class QuotaTier(BaseModel):
    """Limits of one tier (or a per-key/per-user override). ``None`` means no limit / inherit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    monthly_budget_usd: float | None = Field(default=None, ge=0)

    def merged(self, override: QuotaTier | None) -> QuotaTier:
        """This tier with every field that ``override`` sets replaced."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class QuotaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: dict[str, QuotaTier] = Field(default_factory=dict)
    fail_mode: Literal["open", "closed"] = "open"
    reservation_ttl_s: int = Field(default=600, ge=1)
    settled_marker_ttl_s: int = Field(default=86_400, ge=60)
    completion_estimate_tokens: int = Field(default=1024, ge=1)
    """Output tokens reserved for a request without ``max_tokens`` (settled to the real count after);
    never more than the model's own output limit, nor than what the TPM limit leaves after the prompt."""
