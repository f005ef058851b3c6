"""Stored Responses API answers, always read through their owner."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import StoredResponse


class ResponseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_or_none(self, response_id: str, *, user_id: str | None) -> StoredResponse | None:
        """The response when ``user_id`` owns it (``None``: the anonymous principal's own)."""
        owner = StoredResponse.user_id.is_(None) if user_id is None else StoredResponse.user_id == user_id
        result = await self.session.execute(
            select(StoredResponse).where(StoredResponse.id == response_id, owner)
        )
        return result.scalar_one_or_none()

    async def create(self, row: StoredResponse) -> None:
        self.session.add(row)
        await self.session.flush()

    async def delete(self, row: StoredResponse) -> None:
        await self.session.execute(delete(StoredResponse).where(StoredResponse.id == row.id))
        await self.session.flush()
