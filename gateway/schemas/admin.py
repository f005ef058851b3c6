"""Admin bodies: usage reports and user management."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.auth import UserOut


class UsageReport(BaseModel):
    start: str
    end: str
    group_by: list[str]
    data: list[dict[str, Any]]


class UserList(BaseModel):
    data: list[UserOut]
    total: int
    limit: int
    offset: int


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str | None = Field(default=None, pattern="^(user|admin)$")
    tier: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    disabled: bool | None = None
