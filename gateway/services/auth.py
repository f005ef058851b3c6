"""Accounts and login sessions: register, login (with throttling), refresh rotation, logout."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import RefreshToken, User, new_id
from gateway.db.repositories.refresh_tokens import RefreshTokenRepository
from gateway.db.repositories.users import UserRepository
from gateway.errors import AuthenticationFailed, Conflict, InvalidRequest, PermissionDenied
from gateway.security import passwords
from gateway.security.authenticator import Authenticator
from gateway.security.principal import Principal, Role
from gateway.security.throttle import LoginThrottle
from gateway.security.tokens import TokenService, hash_token, new_refresh_token
from gateway.settings import Settings

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


class AuthService:
    def __init__(
        self,
        *,
        settings: Settings,
        tokens: TokenService,
        throttle: LoginThrottle,
        authenticator: Authenticator,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.throttle = throttle
        self.authenticator = authenticator
        passwords.verify_dummy("warm-up")  # the dummy hash exists before the first unknown-user login

    async def register(self, session: AsyncSession, *, email: str, password: str) -> User:
        if not self.settings.registration_open:
            raise PermissionDenied("Registration is closed", code="registration_closed")
        email = normalize_email(email)
        passwords.validate_new_password(password, email=email)
        users = UserRepository(session)
        if await users.get_by_email(email) is not None:
            raise Conflict("An account with this email already exists", param="email")
        password_hash = await passwords.ahash_password(password)
        try:
            async with session.begin_nested():
                user = await users.create(email=email, password_hash=password_hash)
        except IntegrityError as exc:
            raise Conflict("An account with this email already exists", param="email") from exc
        log.info("user_registered", user_id=user.id)
        return user

    async def login(self, session: AsyncSession, *, email: str, password: str, ip: str | None) -> TokenPair:
        account = email.strip().lower()
        self.throttle.check(account=account, ip=ip)
        user = await UserRepository(session).get_by_email(account) if len(password) <= 1024 else None
        ok = await passwords.averify_password(user.password_hash if user else None, password[:1024])
        if user is None or not ok or user.disabled:
            self.throttle.failure(account=account, ip=ip)
            log.info("login_failed", ip=ip)
            raise AuthenticationFailed("Invalid email or password", code="invalid_credentials")
        self.throttle.success(account=account)
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = await passwords.ahash_password(password)
            log.info("password_rehashed", user_id=user.id)
        pair = await self._issue(session, user=user, family_id=new_id(), parent=None)
        log.info("login", user_id=user.id)
        return pair

    async def _issue(
        self, session: AsyncSession, *, user: User, family_id: str, parent: RefreshToken | None
    ) -> TokenPair:
        now = datetime.now(UTC)
        absolute = (
            parent.absolute_expires_at
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

    async def refresh(self, session: AsyncSession, *, refresh_token: str) -> TokenPair:
        invalid = AuthenticationFailed("Invalid refresh token", code="invalid_refresh_token")
        if not refresh_token or len(refresh_token) > 4096:
            raise invalid
        repo = RefreshTokenRepository(session)
        token = await repo.get_by_hash_or_none(hash_token(refresh_token))
        if token is None or token.revoked_at is not None:
            raise invalid
        now = datetime.now(UTC)
        if token.used_at is not None or not await repo.mark_used(token.id, now=now):
            # A rotated token came back (or two refreshes raced): treat the family as stolen.
            revoked = await repo.revoke_family(token.family_id, now=now)
            log.warning(
                "refresh_token_reuse_detected",
                user_id=token.user_id,
                family_id=token.family_id,
                revoked=revoked,
            )
            raise RefreshTokenReused("Invalid refresh token", code="invalid_refresh_token")
        if token.expires_at <= now or token.absolute_expires_at <= now:
            raise invalid
        user = await UserRepository(session).get_or_none(token.user_id)
        if user is None or user.disabled:
            raise invalid
        return await self._issue(session, user=user, family_id=token.family_id, parent=token)

    async def logout(self, session: AsyncSession, *, principal: Principal) -> None:
        if principal.session_id is not None:
            await RefreshTokenRepository(session).revoke_family(principal.session_id, now=datetime.now(UTC))
        log.info("logout", user_id=principal.user_id)

    async def logout_all(self, session: AsyncSession, *, principal: Principal) -> None:
        """Revoke every refresh token and invalidate every access token already issued."""
        assert principal.user_id is not None
        await RefreshTokenRepository(session).revoke_user(principal.user_id, now=datetime.now(UTC))
        await UserRepository(session).bump_token_version(principal.user_id)
        await session.flush()
        self.authenticator.invalidate_user(user_id=principal.user_id)
        log.info("logout_all", user_id=principal.user_id)


async def ensure_admin(session: AsyncSession, *, settings: Settings) -> User | None:
    """Create the first admin from GATEWAY_ADMIN_EMAIL/PASSWORD when no admin exists yet."""
    if not settings.admin_email or settings.admin_password is None:
        return None
    users = UserRepository(session)
    if await users.admin_exists():
        return None
    email = normalize_email(settings.admin_email)
    password = settings.admin_password.get_secret_value()
    passwords.validate_new_password(password, email=email)
    password_hash = await passwords.ahash_password(password)
    existing = await users.get_by_email(email)
    if existing is not None:
        user = await users.update(
            existing, role=Role.ADMIN.value, password_hash=password_hash, disabled=False
        )
    else:
        user = await users.create(email=email, password_hash=password_hash, role=Role.ADMIN.value)
    log.info("admin_bootstrapped", user_id=user.id)
    return user


async def list_users(
    session: AsyncSession, *, limit: int, offset: int, email_contains: str | None
) -> tuple[list[User], int]:
    repo = UserRepository(session)
    users = list(await repo.list(limit=limit, offset=offset, email_contains=email_contains))
    return users, await repo.count(email_contains=email_contains)


async def update_user(
    session: AsyncSession,
    *,
    actor: Principal,
    user_id: str,
    role: str | None,
    tier: str | None,
    disabled: bool | None,
    authenticator: Authenticator,
) -> User:
    repo = UserRepository(session)
    user = await repo.get(user_id)
    if user.id == actor.user_id and (disabled or (role is not None and role != Role.ADMIN.value)):
        raise Conflict("Admins cannot disable or demote themselves")
    values: dict[str, object] = {}
    if role is not None:
        values["role"] = Role(role).value
    if tier is not None:
        values["tier"] = tier
    if disabled is not None:
        values["disabled"] = disabled
    if values.get("disabled") or ("role" in values and values["role"] != user.role):
        values["token_version"] = user.token_version + 1  # outstanding access tokens stop working
        if values.get("disabled"):
            await RefreshTokenRepository(session).revoke_user(user.id, now=datetime.now(UTC))
    user = await repo.update(user, **values)
    authenticator.invalidate_user(user_id=user.id)
    log.info("user_updated", user_id=user.id, by=actor.user_id, fields=sorted(values))
    return user
