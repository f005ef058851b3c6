"""Routing policy bodies (``/admin/routing-policy``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.keys import TIER_NAME


class RoutePolicy(BaseModel):
    """``max_route_tier``: a tier of the routing config (``cheap``, ``strong``, ...); null removes the cap."""

    model_config = ConfigDict(extra="forbid")
    max_route_tier: str | None = Field(min_length=1, max_length=32, pattern=TIER_NAME)


class RoutePolicyOut(BaseModel):
    scope: str
    max_route_tier: str | None
