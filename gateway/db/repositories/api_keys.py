"""API keys (hashes only; the secret is never stored)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import ApiKey, User


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_or_none(self, key_id: str, *, user_id: str) -> ApiKey | None:
        """Object-level check built in: another user's key is simply not found."""
        result = await self.session.execute(
            select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id)
        )
        return result.scalar_one_or_none()

    async def get_with_user_or_none(self, key_id: str) -> tuple[ApiKey, User] | None:
        """Any user's key with its owner (admin reads)."""
        result = await self.session.execute(
            select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
        )
        row = result.first()
        return None if row is None else (row[0], row[1])

    async def get_with_user_by_hash(self, key_hash: str) -> tuple[ApiKey, User] | None:
        result = await self.session.execute(
            select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_hash == key_hash)
        )
        row = result.first()
        return None if row is None else (row[0], row[1])

    async def create(
        self,
        *,
        user_id: str,
        name: str,
        prefix: str,
        key_hash: str,
        expires_at: datetime | None,
        allowed_models: list[str],
        rpm_limit: int | None,
        tpm_limit: int | None,
        max_route_tier: str | None = None,
        allowed_tools: list[str] | None = None,
    ) -> ApiKey:
        key = ApiKey(
            user_id=user_id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            expires_at=expires_at,
            allowed_models=allowed_models,
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
            max_route_tier=max_route_tier,
            allowed_tools=allowed_tools or [],
        )
        self.session.add(key)
        await self.session.flush()
        return key

    async def list(self, *, user_id: str, include_revoked: bool = False) -> Sequence[ApiKey]:
        stmt = select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at, ApiKey.id)
        if not include_revoked:
            stmt = stmt.where(ApiKey.revoked_at.is_(None))
        return (await self.session.execute(stmt)).scalars().all()

    async def set_max_route_tier(self, key: ApiKey, max_route_tier: str | None) -> ApiKey:
        key.max_route_tier = max_route_tier
        await self.session.flush()
        return key

    async def revoke(self, key: ApiKey, *, now: datetime) -> ApiKey:
        if key.revoked_at is None:
            key.revoked_at = now
            await self.session.flush()
        return key

    async def update_last_used(self, last_used: Mapping[str, datetime]) -> None:
        for key_id, when in last_used.items():
            await self.session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(last_used_at=when)
                .execution_options(synchronize_session=False)
            )
