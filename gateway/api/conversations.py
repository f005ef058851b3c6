"""Conversation routes. Who may call: any signed-in user (JWT or API key), on their own conversations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from gateway.deps import SessionDep, UserDep
from gateway.schemas.conversations import ConversationDetail, ConversationList, ConversationOut, MessageOut
from gateway.services import conversations as service

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


@router.get("", response_model=ConversationList)
async def list_conversations(
    principal: UserDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ConversationList:
    items, total = await service.list_conversations(session, principal=principal, limit=limit, offset=offset)
    return ConversationList(
        data=[ConversationOut.model_validate(c) for c in items], total=total, limit=limit, offset=offset
    )


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(
    conversation_id: str, principal: UserDep, session: SessionDep
) -> ConversationDetail:
    conversation, messages = await service.get_conversation(
        session, principal=principal, conversation_id=conversation_id
    )
    return ConversationDetail(
        **ConversationOut.model_validate(conversation).model_dump(),
        messages=[MessageOut.model_validate(m) for m in messages],
    )


@router.delete("/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: str, principal: UserDep, session: SessionDep) -> Response:
    await service.delete_conversation(session, principal=principal, conversation_id=conversation_id)
    return Response(status_code=204)
