"""Conversations and their messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import Conversation, Message


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_or_none(self, conversation_id: str, *, user_id: str) -> Conversation | None:
        result = await self.session.execute(
            select(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
        )
        return result.scalar_one_or_none()

    async def exists_for_other_user(self, conversation_id: str, *, user_id: str) -> bool:
        result = await self.session.execute(
            select(Conversation.id).where(Conversation.id == conversation_id, Conversation.user_id != user_id)
        )
        return result.first() is not None

    async def create(
        self, *, user_id: str, conversation_id: str | None = None, title: str | None = None
    ) -> Conversation:
        conv = Conversation(user_id=user_id, title=title)
        if conversation_id is not None:
            conv.id = conversation_id
        self.session.add(conv)
        await self.session.flush()
        return conv

    async def list(self, *, user_id: str, limit: int, offset: int) -> Sequence[Conversation]:
        stmt = (
            select(Conversation)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.updated_at.desc(), Conversation.id)
            .limit(limit)
            .offset(offset)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def count(self, *, user_id: str) -> int:
        stmt = select(func.count()).select_from(Conversation).where(Conversation.user_id == user_id)
        return int((await self.session.execute(stmt)).scalar_one())

    async def delete(self, conversation: Conversation) -> None:
        await self.session.execute(delete(Message).where(Message.conversation_id == conversation.id))
        await self.session.delete(conversation)
        await self.session.flush()

    async def messages(self, conversation_id: str, *, limit: int | None = None) -> Sequence[Message]:
        """Messages in order; with ``limit`` the most recent ``limit`` of them (still in order)."""
        stmt = select(Message).where(Message.conversation_id == conversation_id)
        if limit is None:
            return (await self.session.execute(stmt.order_by(Message.seq))).scalars().all()
        recent = (await self.session.execute(stmt.order_by(Message.seq.desc()).limit(limit))).scalars().all()
        return list(reversed(recent))

    async def add_messages(
        self,
        conversation: Conversation,
        messages: Sequence[dict[str, str | None]],
        *,
        model: str | None,
        request_id: str | None,
        now: datetime,
    ) -> None:
        result = await self.session.execute(
            select(func.max(Message.seq)).where(Message.conversation_id == conversation.id)
        )
        seq = int(result.scalar_one() or 0)
        for message in messages:
            seq += 1
            self.session.add(
                Message(
                    conversation_id=conversation.id,
                    seq=seq,
                    role=message.get("role") or "user",
                    content=message.get("content") or "",
                    name=message.get("name"),
                    model=model if message.get("role") == "assistant" else None,
                    request_id=request_id,
                    created_at=now,
                )
            )
        conversation.updated_at = now
        await self.session.flush()
