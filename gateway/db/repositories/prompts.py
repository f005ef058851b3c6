"""Prompts, their versions and activations, and applications (issue #24)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.llmops import Application, Prompt, PromptActivation, PromptVersion


class PromptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, row: Prompt) -> Prompt:
        self.session.add(row)
        await self.session.flush()
        return row

    async def get_or_none(self, prompt_id: str, *, lock: bool = False) -> Prompt | None:
        query = select(Prompt).where(Prompt.id == prompt_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_by_name(self, name: str) -> Prompt | None:
        return (await self.session.execute(select(Prompt).where(Prompt.name == name))).scalar_one_or_none()

    async def list(self, *, owner_id: str | None, limit: int, offset: int) -> Sequence[Prompt]:
        query = select(Prompt).order_by(Prompt.created_at, Prompt.id).limit(limit).offset(offset)
        if owner_id is not None:
            query = query.where(Prompt.owner_id == owner_id)
        return (await self.session.execute(query)).scalars().all()

    async def versions(self, prompt_id: str) -> Sequence[PromptVersion]:
        query = (
            select(PromptVersion).where(PromptVersion.prompt_id == prompt_id).order_by(PromptVersion.number)
        )
        return (await self.session.execute(query)).scalars().all()

    async def version(self, prompt_id: str, ref: str) -> PromptVersion | None:
        """A version by id or by number (``3`` or ``v3``)."""
        number = ref.removeprefix("v")
        numeric = number.isdigit() and len(number) <= 9
        condition = PromptVersion.number == int(number) if numeric else PromptVersion.id == ref
        query = select(PromptVersion).where(PromptVersion.prompt_id == prompt_id, condition)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def version_by_id(self, version_id: str) -> PromptVersion | None:
        return await self.session.get(PromptVersion, version_id)

    async def active(self, prompt_id: str) -> PromptVersion | None:
        query = select(PromptVersion).where(PromptVersion.prompt_id == prompt_id, PromptVersion.is_active)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def next_number(self, prompt_id: str) -> int:
        query = select(func.coalesce(func.max(PromptVersion.number), 0)).where(
            PromptVersion.prompt_id == prompt_id
        )
        return int((await self.session.execute(query)).scalar_one()) + 1

    async def add_version(self, row: PromptVersion) -> PromptVersion:
        self.session.add(row)
        await self.session.flush()
        return row

    async def activate(self, *, prompt_id: str, version_id: str, actor_id: str | None) -> PromptActivation:
        """Switch the active version in two statements (off, then on) and audit it; the partial
        unique index refuses a second active version should two activations interleave."""
        previous = await self.active(prompt_id)
        await self.session.execute(
            update(PromptVersion)
            .where(PromptVersion.prompt_id == prompt_id, PromptVersion.is_active)
            .values(is_active=False)
        )
        await self.session.execute(
            update(PromptVersion).where(PromptVersion.id == version_id).values(is_active=True)
        )
        audit = PromptActivation(
            prompt_id=prompt_id,
            version_id=version_id,
            previous_version_id=previous.id if previous is not None else None,
            actor_id=actor_id,
        )
        self.session.add(audit)
        await self.session.flush()
        return audit

    async def activations(self, prompt_id: str) -> Sequence[PromptActivation]:
        query = (
            select(PromptActivation)
            .where(PromptActivation.prompt_id == prompt_id)
            .order_by(PromptActivation.created_at.desc(), PromptActivation.id)
        )
        return (await self.session.execute(query)).scalars().all()


class ApplicationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, row: Application) -> Application:
        self.session.add(row)
        await self.session.flush()
        return row

    async def get_or_none(self, app_id: str) -> Application | None:
        return await self.session.get(Application, app_id)

    async def get_by_name(self, name: str) -> Application | None:
        query = select(Application).where(Application.name == name)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def list(self, *, owner_id: str | None, limit: int, offset: int) -> Sequence[Application]:
        query = (
            select(Application).order_by(Application.created_at, Application.id).limit(limit).offset(offset)
        )
        if owner_id is not None:
            query = query.where(Application.owner_id == owner_id)
        return (await self.session.execute(query)).scalars().all()

    async def delete(self, row: Application) -> None:
        await self.session.delete(row)
        await self.session.flush()
