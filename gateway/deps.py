"""``Annotated`` dependencies: app state, settings, principal. Tests swap them with dependency_overrides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config.settings import Settings
from gateway.errors import GatewayError, ServiceUnavailable
from gateway.lifespan import AppState
from gateway.security import rbac
from gateway.security.principal import ANONYMOUS, Principal
from gateway.services.accounts import Accounts


async def get_app_state(request: Request) -> AppState:
    state: AppState = request.state.app
    return state


AppStateDep = Annotated[AppState, Depends(get_app_state)]


async def get_settings_dep(state: AppStateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_accounts(state: AppStateDep) -> Accounts:
    if state.accounts is None:
        raise ServiceUnavailable("Accounts are not available")
    return state.accounts


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


async def get_session(accounts: AccountsDep) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: commit on success, roll back on error (errors marked
    ``commit_session``, e.g. refresh-token reuse revoking a family, still commit)."""
    async with accounts.sessionmaker() as session:
        try:
            yield session
        except GatewayError as exc:
            if getattr(exc, "commit_session", False):
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def _authenticate(request: Request, accounts: Accounts) -> Principal:
    return await accounts.authenticator.authenticate(
        authorization=request.headers.get("authorization"), x_api_key=request.headers.get("x-api-key")
    )


async def get_principal(request: Request, state: AppStateDep) -> Principal:
    """The caller of /v1. With ``auth_enabled`` false every caller is anonymous (credentials ignored)."""
    if not state.settings.auth_enabled:
        return ANONYMOUS
    return await _authenticate(request, await get_accounts(state))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_user(request: Request, accounts: AccountsDep) -> Principal:
    """A signed-in user (JWT or API key), whatever ``auth_enabled`` says: account routes need one."""
    return rbac.require_user(await _authenticate(request, accounts))


async def get_session_user(principal: Annotated[Principal, Depends(get_user)]) -> Principal:
    """A signed-in user with a login session (JWT), not an API key."""
    return rbac.require_session(principal)


async def get_admin(principal: Annotated[Principal, Depends(get_user)]) -> Principal:
    return rbac.require_admin(principal)


UserDep = Annotated[Principal, Depends(get_user)]
SessionUserDep = Annotated[Principal, Depends(get_session_user)]
AdminDep = Annotated[Principal, Depends(get_admin)]
