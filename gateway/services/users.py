"""User administration: the first admin from the environment, lookups, listing and admin updates
(role, tier, disabled — a change that removes rights stops the user's tokens at once)."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config.settings import Settings
from gateway.db.models import User
from gateway.db.repositories.refresh_tokens import RefreshTokenRepository
from gateway.db.repositories.users import UserRepository
from gateway.errors import Conflict
from gateway.security import passwords
from gateway.security.authenticator import Authenticator
from gateway.security.principal import Principal, Role
from gateway.services.auth import normalize_email

log = structlog.get_logger(__name__)


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


async def get_user(session: AsyncSession, *, user_id: str) -> User:
    """The user (``NotFound`` if there is none)."""
    return await UserRepository(session).get(user_id)


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
