"""Users."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import User
from gateway.errors import NotFound


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_or_none(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def get(self, user_id: str) -> User:
        user = await self.get_or_none(user_id)
        if user is None:
            raise NotFound("User not found")
        return user

    async def get_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(User.email == email))
        return result.scalar_one_or_none()

    async def create(self, *, email: str, password_hash: str, role: str = "user", tier: str = "free") -> User:
        user = User(
            email=email, password_hash=password_hash, role=role, tier=tier, disabled=False, token_version=0
        )
        self.session.add(user)
        await self.session.flush()
        return user

    async def update(self, user: User, **values: Any) -> User:
        for name, value in values.items():
            setattr(user, name, value)
        await self.session.flush()
        return user

    async def bump_token_version(self, user_id: str) -> None:
        await self.session.execute(
            update(User).where(User.id == user_id).values(token_version=User.token_version + 1)
        )

    async def admin_exists(self) -> bool:
        result = await self.session.execute(select(User.id).where(User.role == "admin").limit(1))
        return result.first() is not None

    async def list(self, *, limit: int, offset: int, email_contains: str | None = None) -> Sequence[User]:
        stmt = select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
        if email_contains:
            stmt = stmt.where(User.email.contains(email_contains.lower(), autoescape=True))
        return (await self.session.execute(stmt)).scalars().all()

    async def count(self, *, email_contains: str | None = None) -> int:
        stmt = select(func.count()).select_from(User)
        if email_contains:
            stmt = stmt.where(User.email.contains(email_contains.lower(), autoescape=True))
        return int((await self.session.execute(stmt)).scalar_one())
