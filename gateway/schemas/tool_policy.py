"""Tool policy bodies (``/admin/tool-policy``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ToolName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]


class ToolPolicy(BaseModel):
    """``allowed_tools``: the server tools the key or user may use; ``[]`` removes the restriction."""

    model_config = ConfigDict(extra="forbid")
    allowed_tools: list[ToolName] = Field(max_length=100)


class ToolPolicyOut(BaseModel):
    scope: str
    allowed_tools: list[str]
