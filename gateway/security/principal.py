"""The identity every layer below the API sees."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. Built by the API's auth dependency; nothing below ``api/`` reads headers.

    ``allowed_models`` (the key's) and ``user_allowed_models`` (its owner's) list the model and alias
    names this principal may ask for and be served; empty means every model, and both must allow a
    name (the stricter wins). Allowing an alias does not grant its targets (docs/routing.md).
    ``rpm_limit``/``tpm_limit`` are per-key overrides.
    ``max_route_tier`` (the key's) and ``user_max_route_tier`` (its owner's) cap the routing tier that
    ``model: "auto"`` may pick (``None``: no cap); the stricter one applies.
    """

    user_id: str | None
    role: Role = Role.USER
    tier: str = "free"
    api_key_id: str | None = None
    api_key_prefix: str | None = None
    allowed_models: frozenset[str] = field(default_factory=frozenset)
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    session_id: str | None = None
    max_route_tier: str | None = None
    user_max_route_tier: str | None = None
    user_allowed_models: frozenset[str] = field(default_factory=frozenset)
    allowed_tools: frozenset[str] = field(default_factory=frozenset)
    """Server tools this key may use (empty: any the route offers); ``gateway/tools/access.py``."""
    user_allowed_tools: frozenset[str] = field(default_factory=frozenset)
    """Server tools its owner may use (empty: any); both lists must allow a tool."""

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def tenant(self) -> str:
        """The scope that isolates cache entries and quotas."""
        return self.user_id or "anonymous"

    def may_use(self, model: str) -> bool:
        return (not self.allowed_models or model in self.allowed_models) and (
            not self.user_allowed_models or model in self.user_allowed_models
        )

    def may_call(self, tool: str) -> bool:
        """Whether the key's and the user's tool allow-lists both allow ``tool`` (like ``may_use``)."""
        return (not self.allowed_tools or tool in self.allowed_tools) and (
            not self.user_allowed_tools or tool in self.user_allowed_tools
        )

    @property
    def model_policy(self) -> str | None:
        """Which allow-lists restrict this principal: ``key``, ``user``, ``key+user``, or None."""
        if self.allowed_models and self.user_allowed_models:
            return "key+user"
        if self.allowed_models:
            return "key"
        return "user" if self.user_allowed_models else None


ANONYMOUS = Principal(user_id=None, role=Role.USER, tier="free")
"""The principal of the embedded default when authentication is disabled."""
