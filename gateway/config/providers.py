"""Provider settings that live in the routing config: the mock provider's knobs (``models.<name>.mock``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MockSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0)
    token_delay_ms: float = Field(default=0.0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    failure_kind: Literal["429", "500", "503", "hang"] = "500"
    retry_after_s: float = Field(default=1.0, ge=0)
    cut_after_tokens: int | None = Field(default=None, ge=0)
    answer_words: int = Field(default=0, ge=0, le=4096)
    seed: int = 0
