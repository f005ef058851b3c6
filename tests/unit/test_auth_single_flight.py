"""API-key lookups that miss the in-process cache at the same moment share one database read."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.config.settings import get_settings
from gateway.errors import AuthenticationFailed, DatabaseUnavailable
from gateway.security.api_keys import generate_api_key
from gateway.security.authenticator import Authenticator, _KeyEntry, _UserEntry
from gateway.security.principal import Role


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _authenticator(clock: _Clock, reads: list[str], *, fail: bool = False) -> Authenticator:
    settings = get_settings(api_key_cache_ttl_s=5.0, auth_cache_stale_s=60.0)
    auth = Authenticator(settings=settings, sessionmaker=None, clock=clock)  # type: ignore[arg-type]
    auth.failing = fail  # type: ignore[attr-defined]

    async def load(key_hash: str) -> _KeyEntry | None:
        reads.append(key_hash)
        await asyncio.sleep(0.02)  # the database round trip every waiter shares
        if auth.failing:  # type: ignore[attr-defined]
            raise ConnectionError("database unavailable")
        auth._users.put("u1", _UserEntry(role=Role.USER, tier="free", disabled=False, token_version=0))
        entry = _KeyEntry(
            key_id="k1",
            prefix="sk-prism-ab",
            user_id="u1",
            expires_at=None,
            revoked=False,
            allowed_models=frozenset(),
            rpm_limit=None,
            tpm_limit=None,
        )
        auth._keys.put(key_hash, entry)
        return entry

    auth._load_key = load  # type: ignore[method-assign]
    return auth


async def test_concurrent_misses_share_one_read_and_expiry_reads_once_more() -> None:
    clock, reads = _Clock(), []
    auth = _authenticator(clock, reads)
    key = generate_api_key().secret
    principals: list[Any] = await asyncio.gather(
        *(auth.authenticate(authorization=f"Bearer {key}", x_api_key=None) for _ in range(32))
    )
    assert {p.api_key_id for p in principals} == {"k1"}
    assert len(reads) == 1
    await auth.authenticate(authorization=None, x_api_key=key)  # cached
    assert len(reads) == 1
    clock.now += 6.0  # the entry expired: the next burst reads once again
    await asyncio.gather(*(auth.authenticate(authorization=None, x_api_key=key) for _ in range(16)))
    assert len(reads) == 2


async def test_a_cancelled_caller_does_not_cancel_the_shared_read() -> None:
    clock, reads = _Clock(), []
    auth = _authenticator(clock, reads)
    key = generate_api_key().secret
    first = asyncio.ensure_future(auth.authenticate(authorization=None, x_api_key=key))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(auth.authenticate(authorization=None, x_api_key=key))
    await asyncio.sleep(0)
    first.cancel()  # e.g. that client disconnected
    principal = await second
    assert principal.api_key_id == "k1" and len(reads) == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failed_read_fails_every_waiter_and_is_not_cached() -> None:
    clock, reads = _Clock(), []
    auth = _authenticator(clock, reads, fail=True)
    key = generate_api_key().secret
    results = await asyncio.gather(
        *(auth.authenticate(authorization=None, x_api_key=key) for _ in range(8)), return_exceptions=True
    )
    # a database that cannot be reached is a 503 with Retry-After (never a 500, never a 401)
    assert all(isinstance(r, DatabaseUnavailable) for r in results) and len(reads) == 1
    assert results[0].status_code == 503 and results[0].headers["Retry-After"]  # type: ignore[union-attr]
    with pytest.raises(DatabaseUnavailable):
        await auth.authenticate(authorization=None, x_api_key=key)
    assert len(reads) == 2  # the next request tries again
    assert not isinstance(results[0], AuthenticationFailed)


async def test_a_recently_verified_key_outlives_a_database_outage_for_the_stale_bound() -> None:
    clock, reads = _Clock(), []
    auth = _authenticator(clock, reads)
    key = generate_api_key().secret
    await auth.authenticate(authorization=None, x_api_key=key)
    auth.failing = True  # type: ignore[attr-defined]

    class _Down:
        async def __aenter__(self) -> None:
            raise ConnectionRefusedError(111, "connect call failed")

        async def __aexit__(self, *exc: object) -> None:
            return None

    auth.sessionmaker = lambda: _Down()  # type: ignore[assignment,return-value]
    clock.now += 30.0  # past the 5 s freshness, within the 60 s outage allowance
    principal = await auth.authenticate(authorization=None, x_api_key=key)
    assert principal.api_key_id == "k1" and len(reads) == 2  # it tried the database first
    clock.now += 40.0  # past the allowance: 503, not the old answer
    with pytest.raises(DatabaseUnavailable):
        await auth.authenticate(authorization=None, x_api_key=key)
