"""Resolve request credentials into a ``Principal``.

Accepted: ``Authorization: Bearer <JWT access token>``, ``Authorization: Bearer sk-prism-...`` or
``X-API-Key: sk-prism-...``. Refresh tokens are never accepted here.

Caching: API-key lookups and user states (role, tier, disabled, token version) are cached in
process for at most ``settings.api_key_cache_ttl_s`` seconds. A key revoked or a user disabled
through *another* process therefore takes effect here within that time; changes made through this
process's API call ``invalidate_key``/``invalidate_user`` and take effect at once. Expiry is
checked on every request against the cached expiry time. Concurrent misses on one key share a
single database read (when an entry expires under load, one request reads it, the rest wait for
that read), so an expiry never turns into a burst of identical queries.

Database outages: entries stay in the cache, past their freshness, for ``auth_cache_stale_s``
(at most ``auth_cache_max_entries`` entries, least recently stored dropped first). When a reload
fails because the database cannot be reached, a stale entry is used instead (counted as
``prism_auth_cache{result="stale"}``); without one the request gets 503 ``service_unavailable``
with ``Retry-After``, never a 500.

Access tokens carry the user's ``token_version`` and their login session (refresh-token family).
Both are checked against cached database state: bumping the version (password change, admin
reset, logout-all, disable, role change) or revoking the family (logout, refresh-token reuse)
stops the token on every replica within ``api_key_cache_ttl_s`` (user state) and
``session_check_ttl_s`` (session state), at once in the process that made the change.

``last_used_at`` is not written on the request path: uses are collected in memory and written in
one short transaction every ``settings.api_key_last_used_flush_s`` seconds (and on close).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.background import BackgroundWorker
from gateway.config.settings import Settings
from gateway.db.models import User
from gateway.db.repositories.api_keys import ApiKeyRepository
from gateway.db.repositories.refresh_tokens import RefreshTokenRepository
from gateway.db.repositories.users import UserRepository
from gateway.errors import AuthenticationFailed, as_database_unavailable
from gateway.observability import metrics
from gateway.security.api_keys import hash_api_key, is_api_key
from gateway.security.auth_snapshots import AuthSnapshots
from gateway.security.principal import Principal, Role
from gateway.security.tokens import TokenService

log = structlog.get_logger(__name__)
_AUTH_HIT = metrics.AUTH_CACHE.labels(result="hit")
_AUTH_LOAD = metrics.AUTH_CACHE.labels(result="load")
_AUTH_JOINED = metrics.AUTH_CACHE.labels(result="joined")
_AUTH_STALE = metrics.AUTH_CACHE.labels(result="stale")
_AUTH_SHARED = metrics.AUTH_CACHE.labels(result="shared")
_AUTH_DOWN = metrics.AUTH_CACHE.labels(result="unavailable")


@dataclass(frozen=True, slots=True)
class _KeyEntry:
    key_id: str
    prefix: str
    user_id: str
    expires_at: datetime | None
    revoked: bool
    allowed_models: frozenset[str]
    rpm_limit: int | None
    tpm_limit: int | None
    max_route_tier: str | None = None
    allowed_tools: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _UserEntry:
    role: Role
    tier: str
    disabled: bool
    token_version: int
    max_route_tier: str | None = None
    allowed_tools: frozenset[str] = frozenset()


def _key_from_snapshot(raw: dict[str, Any]) -> _KeyEntry:
    expires = raw.get("expires_at")
    return _KeyEntry(
        **{
            **raw,
            "expires_at": datetime.fromisoformat(expires) if expires else None,
            "allowed_models": frozenset(raw.get("allowed_models") or ()),
            "allowed_tools": frozenset(raw.get("allowed_tools") or ()),
        }
    )


def _user_from_snapshot(raw: dict[str, Any]) -> _UserEntry:
    return _UserEntry(
        **{**raw, "role": Role(raw["role"]), "allowed_tools": frozenset(raw.get("allowed_tools") or ())}
    )


def _session_from_snapshot(raw: Any) -> bool:
    return raw is True


def _user_entry(user: User) -> _UserEntry:
    return _UserEntry(
        role=Role(user.role),
        tier=user.tier,
        disabled=user.disabled,
        token_version=user.token_version,
        max_route_tier=user.max_route_tier,
        allowed_tools=frozenset(user.allowed_tools or ()),
    )


K = TypeVar("K")
V = TypeVar("V")


class _TTLCache(Generic[K, V]):
    """Fresh for ``ttl_s``; kept (for outages only) ``stale_s`` longer; at most ``max_entries``."""

    def __init__(
        self, ttl_s: float, clock: Callable[[], float], *, stale_s: float = 0.0, max_entries: int = 50_000
    ) -> None:
        self.ttl_s = ttl_s
        self.stale_s = stale_s
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        item = self._data.get(key)
        if item is None:
            return False, None
        if item[0] <= self._clock():
            if item[0] + self.stale_s <= self._clock():
                self._data.pop(key, None)
            return False, None
        return True, item[1]

    def get_stale(self, key: K) -> tuple[bool, V | None]:
        """An expired entry still within the outage allowance."""
        item = self._data.get(key)
        if item is None or item[0] + self.stale_s <= self._clock():
            return False, None
        return True, item[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0 and self.stale_s <= 0:
            return
        self._data[key] = (self._clock() + self.ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def remove_where(self, predicate: Callable[[V], bool]) -> None:
        for key in [k for k, (_, v) in self._data.items() if predicate(v)]:
            self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()


class Authenticator:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        tokens: TokenService | None = None,
        snapshots: AuthSnapshots | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.snapshots = snapshots
        self.sessionmaker = sessionmaker
        self.tokens = tokens or TokenService(settings)
        ttl, stale, size = (
            settings.api_key_cache_ttl_s,
            settings.auth_cache_stale_s,
            settings.auth_cache_max_entries,
        )
        session_ttl = settings.session_check_ttl_s if settings.session_check_ttl_s is not None else ttl
        self._keys: _TTLCache[str, _KeyEntry | None] = _TTLCache(ttl, clock, stale_s=stale, max_entries=size)
        self._users: _TTLCache[str, _UserEntry] = _TTLCache(ttl, clock, stale_s=stale, max_entries=size)
        self._sessions: _TTLCache[str, bool] = _TTLCache(session_ttl, clock, stale_s=stale, max_entries=size)
        self._last_used: dict[str, datetime] = {}
        self._loading: dict[str, asyncio.Future[_KeyEntry | None]] = {}
        self._flusher = BackgroundWorker(
            "api_key_last_used",
            self.flush_last_used,
            interval_s=settings.api_key_last_used_flush_s,
            drain=self.flush_last_used,
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._flusher.start()

    async def aclose(self) -> None:
        """Let a write under way finish (bounded), then write the ``last_used_at`` values still held."""
        await self._flusher.stop()
        await self.flush_last_used()

    async def flush_last_used(self) -> None:
        if not self._last_used:
            return
        pending, self._last_used = self._last_used, {}
        try:
            async with self.sessionmaker() as session, session.begin():
                await ApiKeyRepository(session).update_last_used(pending)
        except Exception:
            for key_id, when in pending.items():
                self._last_used.setdefault(key_id, when)
            raise

    # ------------------------------------------------------------------ invalidation
    def invalidate_key(self, *, key_id: str) -> None:
        self._keys.remove_where(lambda entry: entry is not None and entry.key_id == key_id)
        if self.snapshots is not None:
            self.snapshots.forget("keyid", key_id, indexed=True)

    def invalidate_user(self, *, user_id: str) -> None:
        self._users.pop(user_id)
        self._keys.remove_where(lambda entry: entry is not None and entry.user_id == user_id)
        if self.snapshots is not None:  # without the user's entry none of the user's keys is accepted
            self.snapshots.forget("user", user_id)

    def invalidate_session(self, *, session_id: str) -> None:
        self._sessions.pop(session_id)
        if self.snapshots is not None:
            self.snapshots.forget("session", session_id)

    async def _outage(
        self,
        cache: _TTLCache[str, V],
        kind: str,
        ident: str,
        exc: Exception,
        decode: Callable[[Any], V],
    ) -> V | None:
        """After a failed read: this worker's stale entry, else the shared one (another worker's,
        from Redis), when the database is unreachable; otherwise 503 (unreachable) or the error."""
        unavailable = as_database_unavailable(exc)
        if unavailable is None:
            raise exc
        hit, entry = cache.get_stale(ident)
        if hit:
            _AUTH_STALE.inc()
            return entry
        if self.snapshots is not None:
            raw = await self.snapshots.get(kind, ident)
            if raw is not None:
                _AUTH_SHARED.inc()
                shared = decode(raw)
                cache.put(ident, shared)
                return shared
        _AUTH_DOWN.inc()
        log.warning("auth_database_unavailable", error=type(exc).__name__)
        raise unavailable from exc

    def clear_cache(self) -> None:
        self._keys.clear()
        self._users.clear()
        self._sessions.clear()

    # ------------------------------------------------------------------ authentication
    async def authenticate(self, *, authorization: str | None, x_api_key: str | None) -> Principal:
        if x_api_key:
            return await self._from_api_key(x_api_key.strip())
        if not authorization:
            raise AuthenticationFailed("Missing credentials", code="missing_credentials")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationFailed("Unsupported authorization scheme", code="invalid_authorization")
        if is_api_key(credential):
            return await self._from_api_key(credential)
        return await self._from_access_token(credential)

    async def _from_access_token(self, token: str) -> Principal:
        claims = self.tokens.verify_access(token)
        user = await self._user(claims.user_id)
        if user is not None and user.token_version < claims.token_version:
            # A token newer than our cached user (issued elsewhere after a password change or a
            # logout-all): the cache is what is stale, not the token.
            user = await self._user(claims.user_id, fresh=True)
        if user is None or user.disabled:
            raise AuthenticationFailed("Invalid access token", code="invalid_token")
        if user.token_version != claims.token_version:
            raise AuthenticationFailed("Session has been revoked", code="invalid_token")
        if claims.session_id is not None and not await self._session_active(claims.session_id):
            raise AuthenticationFailed("Session has been revoked", code="invalid_token")
        return Principal(
            user_id=claims.user_id,
            role=user.role,
            tier=user.tier,
            session_id=claims.session_id,
            user_max_route_tier=user.max_route_tier,
            user_allowed_tools=user.allowed_tools,
        )

    async def _session_active(self, session_id: str) -> bool:
        hit, active = self._sessions.get(session_id)
        if hit:
            return bool(active)
        try:
            async with self.sessionmaker() as session:
                active = await RefreshTokenRepository(session).family_active(session_id)
        except Exception as exc:
            cached: bool | None = await self._outage(
                self._sessions, "session", session_id, exc, _session_from_snapshot
            )
            return bool(cached)
        self._sessions.put(session_id, active)
        if self.snapshots is not None:
            self.snapshots.put("session", session_id, active)
        return active

    async def _user(self, user_id: str, *, fresh: bool = False) -> _UserEntry | None:
        hit, entry = self._users.get(user_id)
        if hit and not fresh:
            return entry
        try:
            async with self.sessionmaker() as session:
                user = await UserRepository(session).get_or_none(user_id)
        except Exception as exc:
            return await self._outage(self._users, "user", user_id, exc, _user_from_snapshot)
        entry = None
        if user is not None:
            entry = _user_entry(user)
            self._users.put(user_id, entry)
            if self.snapshots is not None:
                self.snapshots.put("user", user_id, entry)
        return entry

    async def _from_api_key(self, secret: str) -> Principal:
        if not is_api_key(secret) or len(secret) > 256:
            raise AuthenticationFailed("Invalid API key")
        key_hash = hash_api_key(secret)
        hit, entry = self._keys.get(key_hash)
        if hit:
            _AUTH_HIT.inc()
        else:
            try:
                entry = await self._load_key_once(key_hash)
            except Exception as exc:
                entry = await self._outage(self._keys, "key", key_hash, exc, _key_from_snapshot)
        if entry is None or entry.revoked:
            raise AuthenticationFailed("Invalid API key")
        if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
            raise AuthenticationFailed("API key expired", code="api_key_expired")
        user = await self._user(entry.user_id)
        if user is None or user.disabled:
            raise AuthenticationFailed("Invalid API key")
        self._last_used[entry.key_id] = datetime.now(UTC)
        return Principal(
            user_id=entry.user_id,
            role=user.role,
            tier=user.tier,
            api_key_id=entry.key_id,
            api_key_prefix=entry.prefix,
            allowed_models=entry.allowed_models,
            rpm_limit=entry.rpm_limit,
            tpm_limit=entry.tpm_limit,
            max_route_tier=entry.max_route_tier,
            user_max_route_tier=user.max_route_tier,
            allowed_tools=entry.allowed_tools,
            user_allowed_tools=user.allowed_tools,
        )

    async def _load_key_once(self, key_hash: str) -> _KeyEntry | None:
        """``_load_key``, shared by every request that misses on ``key_hash`` while it runs.

        The read runs in its own task: a caller that is cancelled (client gone) does not cancel
        the read the others wait for."""
        pending = self._loading.get(key_hash)
        if pending is not None:
            _AUTH_JOINED.inc()
            return await asyncio.shield(pending)
        _AUTH_LOAD.inc()
        task = asyncio.ensure_future(self._load_key(key_hash))
        self._loading[key_hash] = task
        task.add_done_callback(lambda _: self._loading.pop(key_hash, None))
        return await asyncio.shield(task)

    async def _load_key(self, key_hash: str) -> _KeyEntry | None:
        async with self.sessionmaker() as session:
            found = await ApiKeyRepository(session).get_with_user_by_hash(key_hash)
        if found is None:
            # negative entries are cached too (bounded): a flood of bad keys does not hit the DB each time
            self._keys.put(key_hash, None)
            return None
        key, user = found
        entry = _KeyEntry(
            key_id=key.id,
            prefix=key.prefix,
            user_id=key.user_id,
            expires_at=key.expires_at,
            revoked=key.revoked_at is not None,
            allowed_models=frozenset(key.allowed_models or ()),
            rpm_limit=key.rpm_limit,
            tpm_limit=key.tpm_limit,
            max_route_tier=key.max_route_tier,
            allowed_tools=frozenset(key.allowed_tools or ()),
        )
        self._keys.put(key_hash, entry)
        self._users.put(user.id, _user_entry(user))
        if self.snapshots is not None:
            self.snapshots.put("key", key_hash, entry, index=("keyid", key.id))
            self.snapshots.put("user", user.id, _user_entry(user))
        return entry
