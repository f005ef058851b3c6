"""``Annotated`` dependencies: app state, settings, principal. Tests swap them with dependency_overrides."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.lifespan import AppState
from gateway.security.principal import ANONYMOUS, Principal
from gateway.settings import Settings


def get_app_state(request: Request) -> AppState:
    state: AppState = request.state.app
    return state


AppStateDep = Annotated[AppState, Depends(get_app_state)]


def get_settings_dep(state: AppStateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_principal(state: AppStateDep) -> Principal:
    """The caller's identity. Without accounts configured (auth disabled) every caller is anonymous."""
    return ANONYMOUS


PrincipalDep = Annotated[Principal, Depends(get_principal)]
