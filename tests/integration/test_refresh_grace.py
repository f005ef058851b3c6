"""Refresh-token grace on real databases: a second tab gets a sibling pair inside the window;
reuse after the window, of an older token or beyond the sibling bound still revokes the family."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.engine import create_engine, create_sessionmaker
from gateway.errors import AuthenticationFailed
from gateway.security.authenticator import Authenticator
from gateway.security.throttle import AuthThrottle, ThrottleLimits
from gateway.security.tokens import TokenService
from gateway.services.auth import AuthService, RefreshTokenReused, TokenPair
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.db_fixtures import db_test_settings

pytestmark = pytest.mark.integration
PASSWORD = "violet-harbour-kettle-91"


@dataclass
class Env:
    auth: AuthService
    sessions: async_sessionmaker[AsyncSession]
    now: list[datetime]

    async def login(self) -> TokenPair:
        email = f"grace-{uuid.uuid4().hex[:8]}@example.com"
        async with self.sessions() as session, session.begin():
            await self.auth.register(session, email=email, password=PASSWORD, ip=None)
        async with self.sessions() as session, session.begin():
            return await self.auth.login(session, email=email, password=PASSWORD, ip=None)

    async def refresh(self, pair: TokenPair) -> TokenPair:
        async with self.sessions() as session:
            try:
                result = await self.auth.refresh(session, refresh_token=pair.refresh_token)
            except AuthenticationFailed as exc:
                if getattr(exc, "commit_session", False):
                    await session.commit()
                raise
            await session.commit()
            return result

    def later(self, seconds: float) -> None:
        self.now[0] += timedelta(seconds=seconds)


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    settings = db_test_settings(db_url, refresh_grace_s=20.0, refresh_grace_max_siblings=2)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    now = [datetime.now(UTC)]
    tokens = TokenService(settings)
    auth = AuthService(
        settings=settings,
        tokens=tokens,
        throttle=AuthThrottle(limits=ThrottleLimits(register_per_address=1000)),
        authenticator=Authenticator(settings=settings, sessionmaker=sessions, tokens=tokens),
        now=lambda: now[0],
    )
    yield Env(auth, sessions, now)
    await engine.dispose()


async def test_second_tab_inside_the_window_gets_a_sibling(env: Env) -> None:
    first = await env.login()
    tab_a = await env.refresh(first)
    env.later(5)
    tab_b = await env.refresh(first)  # the same token again, 5 s later: a sibling, no revocation
    assert tab_b.refresh_token != tab_a.refresh_token
    assert (await env.refresh(tab_a)).refresh_token
    assert (await env.refresh(tab_b)).refresh_token


async def test_reuse_after_the_window_revokes_the_family(env: Env) -> None:
    first = await env.login()
    rotated = await env.refresh(first)
    env.later(21)
    with pytest.raises(RefreshTokenReused):
        await env.refresh(first)
    with pytest.raises(AuthenticationFailed):
        await env.refresh(rotated)


async def test_reuse_of_an_older_token_inside_the_window_revokes_the_family(env: Env) -> None:
    first = await env.login()
    second = await env.refresh(first)
    third = await env.refresh(second)  # `first` is no longer the immediately previous token
    with pytest.raises(RefreshTokenReused):
        await env.refresh(first)
    with pytest.raises(AuthenticationFailed):
        await env.refresh(third)


async def test_siblings_are_bounded(env: Env) -> None:
    first = await env.login()
    await env.refresh(first)
    await env.refresh(first)
    await env.refresh(first)  # two siblings: the bound
    with pytest.raises(RefreshTokenReused):
        await env.refresh(first)


async def test_two_parallel_refreshes_both_succeed(env: Env) -> None:
    first = await env.login()
    results = await asyncio.gather(env.refresh(first), env.refresh(first), return_exceptions=True)
    assert all(isinstance(r, TokenPair) for r in results), results
    for pair in results:
        assert isinstance(pair, TokenPair)
        await env.refresh(pair)
