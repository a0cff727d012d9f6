"""HTTP routes of the chat domain: message history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from videochat.accounts.auth import OptionalUser
from videochat.chat import repository
from videochat.chat import service as chat
from videochat.chat.reactions import summarise
from videochat.chat.schemas import MessageOut
from videochat.context import Session
from videochat.kit.pagination import MessageCursor
from videochat.rooms import service as rooms

router = APIRouter(tags=["chat"])


@router.get("/rooms/{room_id}/messages", response_model=list[MessageOut])
async def list_messages(
    room_id: str,
    session: Session,
    user: OptionalUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    before: MessageCursor = None,
) -> list[MessageOut]:
    """A page of the room's messages, oldest first, ending before ``before``."""
    await rooms.get_visible_view(session, room_id, viewer_id=user.id if user else None)
    found = await chat.history(session, room_id=room_id, limit=limit, before=before)
    on = await repository.reactions_of(session, [message.id for message in found])
    return [MessageOut.from_model(message, summarise(on[message.id])) for message in found]
