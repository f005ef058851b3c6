"""Accounts and login sessions: register, login, refresh rotation, logout, password change and reset.

Answers that must not reveal whether an account exists: ``register`` (202 with one body for a new
and an existing email; the password is hashed either way so the timing matches), ``login`` (one
error for unknown user, wrong password and disabled account; unknown users are verified against a
dummy hash) and ``reset_password`` (one error for any bad token). There is no self-service
"forgot password" by email; an admin issues a one-time reset token (``admin_reset``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config.settings import Settings
from gateway.db.models import RefreshToken, User, new_id
from gateway.db.repositories.refresh_tokens import RefreshTokenRepository
from gateway.db.repositories.users import UserRepository
from gateway.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from gateway.security import passwords
from gateway.security.authenticator import Authenticator
from gateway.security.principal import Principal
from gateway.security.throttle import AuthThrottle
from gateway.security.tokens import TokenService, hash_token, new_refresh_token

log = structlog.get_logger(__name__)

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


class RefreshTokenReused(AuthenticationFailed):
    """Reuse of a rotated refresh token: the family is revoked and that revocation must be committed."""

    commit_session = True


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise InvalidRequest("Invalid email address", param="email")
    return value


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive (they are stored as UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class AuthService:
    def __init__(
        self,
        *,
        settings: Settings,
        tokens: TokenService,
        throttle: AuthThrottle,
        authenticator: Authenticator,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.throttle = throttle
        self.authenticator = authenticator
        self._now = now
        passwords.verify_dummy("warm-up")  # the dummy hash exists before the first unknown-user login

    # ------------------------------------------------------------------ registration
    async def register(self, session: AsyncSession, *, email: str, password: str, ip: str | None) -> None:
        """Create the account unless the email is taken; the caller cannot tell which happened."""
        await self.throttle.register(address=ip)
        if not self.settings.registration_enabled:
            raise PermissionDenied("Registration is closed", code="registration_closed")
        email = normalize_email(email)
        passwords.validate_new_password(password, email=email)
        users = UserRepository(session)
        existing = await users.get_by_email(email)
        password_hash = await passwords.ahash_password(password)  # also for a taken email: same timing
        if existing is not None:
            log.info("register_existing_email", user_id=existing.id)
            return
        try:
            async with session.begin_nested():
                user = await users.create(email=email, password_hash=password_hash)
        except IntegrityError:
            log.info("register_existing_email")
            return
        log.info("user_registered", user_id=user.id)

    # ------------------------------------------------------------------ login
    async def login(self, session: AsyncSession, *, email: str, password: str, ip: str | None) -> TokenPair:
        account = email.strip().lower()
        attempt = await self.throttle.login(account=account, address=ip)
        try:
            user = await UserRepository(session).get_by_email(account) if len(password) <= 1024 else None
            ok = await passwords.averify_password(user.password_hash if user else None, password[:1024])
        except BaseException:
            await attempt.succeeded()  # not a guess: the database failed, or the client left
            raise
        if user is None or not ok or user.disabled:
            log.info("login_failed", ip=ip)
            raise AuthenticationFailed("Invalid email or password", code="invalid_credentials")
        await attempt.succeeded()
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = await passwords.ahash_password(password)
            log.info("password_rehashed", user_id=user.id)
        pair = await self._issue(session, user=user, family_id=new_id(), parent=None)
        log.info("login", user_id=user.id)
        return pair

    async def _issue(
        self, session: AsyncSession, *, user: User, family_id: str, parent: RefreshToken | None
    ) -> TokenPair:
        now = self._now()
        absolute = (
            _aware(parent.absolute_expires_at)
            if parent is not None
            else now + timedelta(seconds=self.settings.refresh_token_absolute_ttl_s)
        )
        expires = min(now + timedelta(seconds=self.settings.refresh_token_ttl_s), absolute)
        raw = new_refresh_token()
        await RefreshTokenRepository(session).create(
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_token(raw),
            parent_id=parent.id if parent else None,
            expires_at=expires,
            absolute_expires_at=absolute,
        )
        access, ttl = self.tokens.issue_access(
            user_id=user.id,
            role=user.role,
            tier=user.tier,
            session_id=family_id,
            token_version=user.token_version,
        )
        return TokenPair(access_token=access, refresh_token=raw, expires_in=ttl)

    # ------------------------------------------------------------------ refresh
    async def refresh(self, session: AsyncSession, *, refresh_token: str, ip: str | None = None) -> TokenPair:
        attempt = await self.throttle.refresh(address=ip)
        try:
            pair = await self._refresh(session, refresh_token=refresh_token)
        except AuthenticationFailed:
            raise  # counts as a failure
        except BaseException:
            await attempt.succeeded()  # the database failed, not the caller
            raise
        await attempt.succeeded()
        return pair

    async def _refresh(self, session: AsyncSession, *, refresh_token: str) -> TokenPair:
        invalid = AuthenticationFailed("Invalid refresh token", code="invalid_refresh_token")
        if not refresh_token or len(refresh_token) > 4096:
            raise invalid
        repo = RefreshTokenRepository(session)
        token = await repo.get_by_hash_or_none(hash_token(refresh_token))
        if token is None or token.revoked_at is not None:
            raise invalid
        now = self._now()
        if token.used_at is None and await repo.mark_used(token.id, now=now):
            parent = token
        else:
            await session.refresh(token)  # a racing refresh may just have claimed it
            if not await self._within_grace(repo, token, now=now):
                # A rotated token came back: treat the family as stolen.
                revoked = await repo.revoke_family(token.family_id, now=now)
                self.authenticator.invalidate_session(session_id=token.family_id)
                log.warning(
                    "refresh_token_reuse_detected",
                    user_id=token.user_id,
                    family_id=token.family_id,
                    revoked=revoked,
                )
                raise RefreshTokenReused("Invalid refresh token", code="invalid_refresh_token")
            log.info("refresh_grace_sibling", user_id=token.user_id, family_id=token.family_id)
            parent = token  # a sibling of the pair the first refresh got
        if _aware(token.expires_at) <= now or _aware(token.absolute_expires_at) <= now:
            raise invalid
        user = await UserRepository(session).get_or_none(token.user_id)
        if user is None or user.disabled:
            raise invalid
        return await self._issue(session, user=user, family_id=token.family_id, parent=parent)

    async def _within_grace(
        self, repo: RefreshTokenRepository, token: RefreshToken, *, now: datetime
    ) -> bool:
        """The token was rotated moments ago and nothing after it was used: a second tab, not a thief.

        Reuse of an older token (its child already rotated), after the window, of a revoked
        family, or beyond ``refresh_grace_max_siblings`` extra pairs is still reuse."""
        grace = self.settings.refresh_grace_s
        if grace <= 0 or token.revoked_at is not None or token.used_at is None:
            return False
        if _aware(token.used_at) < now - timedelta(seconds=grace):
            return False
        children = await repo.children(token)
        if len(children) > self.settings.refresh_grace_max_siblings:
            return False
        return all(child.used_at is None and child.revoked_at is None for child in children)

    # ------------------------------------------------------------------ logout
    async def logout(self, session: AsyncSession, *, principal: Principal) -> None:
        """Revoke this login session: its refresh tokens now, its access tokens on every replica
        within ``session_check_ttl_s`` (at once on this one)."""
        if principal.session_id is not None:
            await RefreshTokenRepository(session).revoke_family(principal.session_id, now=self._now())
            await session.flush()
            self.authenticator.invalidate_session(session_id=principal.session_id)
        log.info("logout", user_id=principal.user_id)

    async def logout_all(self, session: AsyncSession, *, principal: Principal) -> None:
        """Revoke every refresh token and invalidate every access token already issued."""
        assert principal.user_id is not None
        await self._end_all_sessions(session, user_id=principal.user_id)
        log.info("logout_all", user_id=principal.user_id)

    async def _end_all_sessions(self, session: AsyncSession, *, user_id: str) -> None:
        await RefreshTokenRepository(session).revoke_user(user_id, now=self._now())
        await UserRepository(session).bump_token_version(user_id)
        await session.flush()
        self.authenticator.invalidate_user(user_id=user_id)

    # ------------------------------------------------------------------ passwords
    async def change_password(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        current_password: str,
        new_password: str,
        ip: str | None,
    ) -> TokenPair:
        """Change the caller's password; every session and access token (this one too) ends, and a
        fresh session is returned."""
        assert principal.user_id is not None
        users = UserRepository(session)
        user = await users.get(principal.user_id)
        attempt = await self.throttle.login(account=user.email, address=ip)
        if not await passwords.averify_password(user.password_hash, current_password[:1024]):
            log.info("password_change_failed", user_id=user.id)
            raise InvalidRequest(
                "The current password is wrong", param="current_password", code="invalid_current_password"
            )
        await attempt.succeeded()
        passwords.validate_new_password(new_password, email=user.email)
        password_hash = await passwords.ahash_password(new_password)
        await self._end_all_sessions(session, user_id=user.id)
        await session.refresh(user)
        user = await users.update(user, password_hash=password_hash)
        log.info("password_changed", user_id=user.id)
        return await self._issue(session, user=user, family_id=new_id(), parent=None)

    async def admin_reset(self, session: AsyncSession, *, actor: Principal, user_id: str) -> tuple[str, int]:
        """Lock the account's password and sessions now; return a one-time reset token (and its TTL).

        The old password stops working (it is replaced by an unusable random hash), every session
        and access token ends. The token is a signed JWT bound to the new password hash and token
        version: using it changes both, so it works once."""
        users = UserRepository(session)
        user = await users.get(user_id)
        locked = await passwords.ahash_password(secrets.token_urlsafe(32))
        await self._end_all_sessions(session, user_id=user.id)
        await session.refresh(user)
        user = await users.update(user, password_hash=locked)
        token, ttl = self.tokens.issue_password_reset(
            user_id=user.id, token_version=user.token_version, password_hash=user.password_hash
        )
        log.info("password_reset_issued", user_id=user.id, by=actor.user_id)
        return token, ttl

    async def reset_password(
        self, session: AsyncSession, *, token: str, new_password: str, ip: str | None
    ) -> None:
        """Set a new password with a reset token; one answer for every kind of bad token."""
        attempt = await self.throttle.refresh(address=ip)
        invalid = InvalidRequest("Invalid or expired reset token", param="token", code="invalid_reset_token")
        claims = self.tokens.verify_password_reset(token)
        if claims is None:
            raise invalid
        users = UserRepository(session)
        user = await users.get_or_none(claims.user_id)
        if (
            user is None
            or user.disabled
            or user.token_version != claims.token_version
            or not self.tokens.reset_binds(claims, password_hash=user.password_hash)
        ):
            raise invalid
        await attempt.succeeded()
        passwords.validate_new_password(new_password, email=user.email)
        password_hash = await passwords.ahash_password(new_password)
        await self._end_all_sessions(session, user_id=user.id)
        await session.refresh(user)
        await users.update(user, password_hash=password_hash)
        log.info("password_reset", user_id=user.id)
