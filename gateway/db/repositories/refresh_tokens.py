"""Refresh tokens: one row per issued token, grouped in families (one login session)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import RefreshToken


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_hash_or_none(self, token_hash: str) -> RefreshToken | None:
        result = await self.session.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
        return result.scalar_one_or_none()

    async def create(
        self,
        *,
        user_id: str,
        family_id: str,
        token_hash: str,
        parent_id: str | None,
        expires_at: datetime,
        absolute_expires_at: datetime,
    ) -> RefreshToken:
        token = RefreshToken(
            user_id=user_id,
            family_id=family_id,
            token_hash=token_hash,
            parent_id=parent_id,
            expires_at=expires_at,
            absolute_expires_at=absolute_expires_at,
        )
        self.session.add(token)
        await self.session.flush()
        return token

    async def mark_used(self, token_id: str, *, now: datetime) -> bool:
        """Atomically claim a token: True for exactly one caller, however many race."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == token_id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None)
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def revoke_family(self, family_id: str, *, now: datetime) -> int:
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return int(result.rowcount)

    async def revoke_user(self, user_id: str, *, now: datetime) -> int:
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return int(result.rowcount)

    async def family_active(self, family_id: str) -> bool:
        """Whether a login session still has an unrevoked token (logout/reuse revoke them all)."""
        result = await self.session.execute(
            select(RefreshToken.id)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .limit(1)
        )
        return result.first() is not None

    async def children(self, token: RefreshToken) -> list[RefreshToken]:
        """The tokens issued by rotating ``token`` (one, or a few siblings within the grace window)."""
        result = await self.session.execute(
            select(RefreshToken).where(
                RefreshToken.family_id == token.family_id, RefreshToken.parent_id == token.id
            )
        )
        return list(result.scalars())
