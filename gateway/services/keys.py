"""API key management for the signed-in user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import ApiKey
from gateway.db.repositories.api_keys import ApiKeyRepository
from gateway.errors import InvalidRequest, NotFound
from gateway.security.api_keys import generate_api_key
from gateway.security.authenticator import Authenticator
from gateway.security.principal import Principal

log = structlog.get_logger(__name__)

MAX_KEYS_PER_USER = 100


class KeyService:
    def __init__(self, *, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def create(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        name: str,
        expires_at: datetime | None,
        allowed_models: list[str],
        rpm_limit: int | None,
        tpm_limit: int | None,
        max_route_tier: str | None = None,
        allowed_tools: list[str] | None = None,
    ) -> tuple[ApiKey, str]:
        assert principal.user_id is not None
        if expires_at is not None:
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)
            if expires_at <= datetime.now(UTC):
                raise InvalidRequest("expires_at must be in the future", param="expires_at")
        repo = ApiKeyRepository(session)
        if len(await repo.list(user_id=principal.user_id)) >= MAX_KEYS_PER_USER:
            raise InvalidRequest(f"At most {MAX_KEYS_PER_USER} active keys per user", code="too_many_keys")
        new = generate_api_key()
        key = await repo.create(
            user_id=principal.user_id,
            name=name,
            prefix=new.prefix,
            key_hash=new.key_hash,
            expires_at=expires_at,
            allowed_models=sorted(set(allowed_models)),
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
            max_route_tier=max_route_tier,
            allowed_tools=sorted(set(allowed_tools or ())),
        )
        log.info("api_key_created", user_id=principal.user_id, key_id=key.id, prefix=key.prefix)
        return key, new.secret

    async def list(self, session: AsyncSession, *, principal: Principal) -> Sequence[ApiKey]:
        assert principal.user_id is not None
        return await ApiKeyRepository(session).list(user_id=principal.user_id)

    async def set_route_policy(
        self, session: AsyncSession, *, principal: Principal, key_id: str, max_route_tier: str | None
    ) -> ApiKey:
        """Cap (or uncap) the routing tier of one of the caller's own keys; effective at once here."""
        assert principal.user_id is not None
        repo = ApiKeyRepository(session)
        key = await repo.get_or_none(key_id, user_id=principal.user_id)
        if key is None or key.revoked_at is not None:
            raise NotFound("API key not found")
        await repo.set_max_route_tier(key, max_route_tier)
        self.authenticator.invalidate_key(key_id=key.id)
        log.info(
            "api_key_route_policy", user_id=principal.user_id, key_id=key.id, max_route_tier=max_route_tier
        )
        return key

    async def revoke(self, session: AsyncSession, *, principal: Principal, key_id: str) -> ApiKey:
        assert principal.user_id is not None
        repo = ApiKeyRepository(session)
        key = await repo.get_or_none(key_id, user_id=principal.user_id)
        if key is None or key.revoked_at is not None:
            raise NotFound("API key not found")
        await repo.revoke(key, now=datetime.now(UTC))
        self.authenticator.invalidate_key(key_id=key.id)
        log.info("api_key_revoked", user_id=principal.user_id, key_id=key.id)
        return key
