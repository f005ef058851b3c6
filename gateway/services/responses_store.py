"""Stored Responses API answers (``store: true``): what ``previous_response_id``, ``GET``, ``DELETE``
and ``input_items`` read. The Responses family's part of the conversation store.

Object-level authorization: a response belongs to the user whose request made it (any of that
user's keys or tokens may read, continue or delete it); everyone else gets the same 404 as for an id
that never existed. With authentication off, the anonymous principal owns what it stored.
Reads run in a short session before the model call; the write runs in its own unit of work after
the answer and before the response's last byte (so a client may continue at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.models import StoredResponse
from gateway.db.repositories.responses import ResponseRepository
from gateway.errors import NotFound
from gateway.security.principal import Principal


@dataclass(slots=True)
class Continuation:
    """What a new response inherits from its ``previous_response_id``."""

    history: list[dict[str, Any]]
    chain_id: str


def not_found(response_id: str, param: str | None) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param=param)


async def get(session: AsyncSession, *, principal: Principal, response_id: str) -> StoredResponse:
    row = await ResponseRepository(session).get_or_none(response_id, user_id=principal.user_id)
    if row is None:
        raise not_found(response_id, None)
    return row


async def load_previous(
    sessionmaker: async_sessionmaker[AsyncSession], *, principal: Principal, response_id: str
) -> Continuation:
    async with sessionmaker() as session:
        row = await ResponseRepository(session).get_or_none(response_id, user_id=principal.user_id)
    if row is None:
        raise not_found(response_id, "previous_response_id")
    return Continuation(history=list(row.history), chain_id=row.chain_id)


async def save(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    principal: Principal,
    body: Mapping[str, Any],
    input_items: list[dict[str, Any]],
    history: list[dict[str, Any]],
    chain_id: str | None,
) -> None:
    row = StoredResponse(
        id=str(body["id"]),
        user_id=principal.user_id,
        api_key_id=principal.api_key_id,
        chain_id=chain_id or str(body["id"]),
        previous_response_id=body.get("previous_response_id"),
        model=str(body.get("model") or "")[:128],
        body=dict(body),
        input_items=input_items,
        history=history,
    )
    async with sessionmaker() as session, session.begin():
        await ResponseRepository(session).create(row)


async def delete(session: AsyncSession, *, principal: Principal, response_id: str) -> None:
    repo = ResponseRepository(session)
    row = await repo.get_or_none(response_id, user_id=principal.user_id)
    if row is None:
        raise not_found(response_id, None)
    await repo.delete(row)


def listed_items(response_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as ``GET /v1/responses/{id}/input_items`` lists them: each with an id."""
    out = []
    for index, item in enumerate(items):
        listed = {"type": "message", **item}
        listed.setdefault("id", f"in_{response_id.removeprefix('resp_')}_{index}")
        if listed["type"] == "message":
            content = listed.get("content")
            if isinstance(content, str):
                kind = "output_text" if listed.get("role") == "assistant" else "input_text"
                listed["content"] = [{"type": kind, "text": content}]
            listed.setdefault("status", "completed")
        out.append(listed)
    return out
