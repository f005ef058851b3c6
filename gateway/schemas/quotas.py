"""Admin quota bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QuotaPatch(BaseModel):
    """New limits: ``rpm_limit``/``tpm_limit`` for an API key, ``tier`` for a user. ``null`` clears a
    key's override (the tier's limits apply again)."""

    model_config = ConfigDict(extra="forbid")

    rpm_limit: int | None = Field(default=None, ge=0)
    tpm_limit: int | None = Field(default=None, ge=0)
    tier: str | None = Field(default=None, min_length=1, max_length=32)
