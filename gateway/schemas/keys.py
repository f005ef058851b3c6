"""API key bodies. The secret appears only in ``ApiKeyCreated``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

TIER_NAME = r"^[A-Za-z0-9_.-]+$"


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    expires_at: datetime | None = None
    allowed_models: list[str] = Field(default_factory=list, max_length=100)
    allowed_tools: list[str] = Field(default_factory=list, max_length=100)
    """Server tools this key may use (empty: any the route offers); docs/tools.md."""
    rpm_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    tpm_limit: int | None = Field(default=None, ge=1, le=1_000_000_000)
    max_route_tier: str | None = Field(default=None, min_length=1, max_length=32, pattern=TIER_NAME)
    """The highest routing tier ``model: "auto"`` may pick for this key (e.g. ``cheap``); null: no cap."""


class ApiKeyUpdate(BaseModel):
    """Change a key's routing policy; ``max_route_tier: null`` removes the cap."""

    model_config = ConfigDict(extra="forbid")
    max_route_tier: str | None = Field(min_length=1, max_length=32, pattern=TIER_NAME)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    allowed_models: list[str]
    rpm_limit: int | None
    tpm_limit: int | None
    max_route_tier: str | None = None
    allowed_tools: list[str] = []


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret. Shown once; store it now.")


class ApiKeyList(BaseModel):
    data: list[ApiKeyOut]
