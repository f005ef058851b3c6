"""Opens the account-side resources once per process: engine, sessions, auth, usage recorder."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.cache.backends import make_redis
from gateway.config.settings import Settings
from gateway.db.engine import create_engine, create_sessionmaker
from gateway.security.auth_snapshots import AuthSnapshots
from gateway.security.authenticator import Authenticator
from gateway.security.client_address import ClientAddressResolver
from gateway.security.throttle import AuthThrottle, ThrottleLimits
from gateway.security.tokens import TokenService
from gateway.services.auth import AuthService
from gateway.services.keys import KeyService
from gateway.services.users import ensure_admin
from gateway.usage.recorder import UsageRecorder

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Accounts:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    tokens: TokenService
    authenticator: Authenticator
    throttle: AuthThrottle
    auth: AuthService
    keys: KeyService
    recorder: UsageRecorder
    addresses: ClientAddressResolver


def throttle_limits(settings: Settings) -> ThrottleLimits:
    return ThrottleLimits(
        window_s=settings.login_throttle_window_s,
        per_account_address=settings.login_max_failures_per_account,
        per_address=settings.login_max_failures_per_ip,
        per_account=settings.login_max_failures_per_account_total,
        refresh_per_address=settings.refresh_max_failures_per_ip,
        register_per_address=settings.register_max_per_ip,
        register_window_s=settings.register_window_s,
    )


async def open_accounts(settings: Settings, stack: contextlib.AsyncExitStack) -> Accounts:
    """Migrate (when configured), bootstrap the first admin, start the background writers.

    Everything is registered on ``stack``: the usage recorder flushes (or spills) on exit, then
    the authenticator writes pending ``last_used_at`` values, then the engine is disposed.
    """
    if settings.database_migrate_on_start:
        # Imported here: Alembic (~5 MB per worker) stays out of processes that do not migrate.
        from gateway.db.migrate import migrate

        await migrate(settings)
    engine = create_engine(settings)
    stack.push_async_callback(engine.dispose)
    sessionmaker = create_sessionmaker(engine)
    tokens = TokenService(settings)
    redis = None
    snapshots = None
    if settings.redis_url:
        # auth throttling is cluster-wide through Redis (in process without it), and so are the
        # last known key/user states a worker falls back on during a database outage
        redis = make_redis(settings.redis_url, timeout_ms=settings.redis_timeout_ms, max_connections=32)
        stack.push_async_callback(redis.aclose)
        snapshots = AuthSnapshots(redis, prefix=settings.redis_key_prefix, ttl_s=settings.auth_cache_stale_s)
        stack.push_async_callback(snapshots.drain)
    authenticator = Authenticator(
        settings=settings, sessionmaker=sessionmaker, tokens=tokens, snapshots=snapshots
    )
    await authenticator.start()
    stack.push_async_callback(authenticator.aclose)
    throttle = AuthThrottle(limits=throttle_limits(settings), redis=redis, prefix=settings.redis_key_prefix)
    recorder = UsageRecorder(settings=settings, engine=engine)
    await recorder.start()
    stack.push_async_callback(recorder.aclose)
    try:
        async with sessionmaker() as session, session.begin():
            await ensure_admin(session, settings=settings)
    except IntegrityError:
        # Workers starting together on a fresh database: another one created the admin first.
        log.info("admin_bootstrapped_elsewhere")
    return Accounts(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        tokens=tokens,
        authenticator=authenticator,
        throttle=throttle,
        auth=AuthService(settings=settings, tokens=tokens, throttle=throttle, authenticator=authenticator),
        keys=KeyService(authenticator=authenticator),
        recorder=recorder,
        addresses=ClientAddressResolver(settings.trusted_proxies),
    )
