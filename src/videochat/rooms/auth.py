"""Room-scoped FastAPI dependencies: the room as the caller may see it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from videochat.accounts.auth import OptionalUser
from videochat.context import Session
from videochat.rooms import service as rooms
from videochat.rooms.repository import RoomView


async def visible_room(room_id: str, session: Session, user: OptionalUser) -> RoomView:
    """The path's room (from the read cache); 404 when the caller may not see it."""
    return await rooms.get_visible_view(session, room_id, viewer_id=user.id if user else None)


VisibleRoom = Annotated[RoomView, Depends(visible_room)]
