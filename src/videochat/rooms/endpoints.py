"""HTTP routes of the rooms domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from videochat.accounts.auth import Actor, OptionalUser, resolve_actor
from videochat.context import Session, SettingsDep
from videochat.exceptions import Unauthorized
from videochat.kit.pagination import Offset
from videochat.observability import metrics
from videochat.rooms import repository
from videochat.rooms.auth import VisibleRoom
from videochat.rooms.schemas import JoinResult, MemberOut, RoomCreate, RoomJoin, RoomOut
from videochat.rooms.service import rooms, to_out

router = APIRouter(tags=["rooms"])


@router.post("/rooms", response_model=RoomOut)
async def create_room(body: RoomCreate, session: Session, user: Actor) -> RoomOut:
    """Create a room; the caller becomes its owner."""
    if user is None and body.is_private:
        raise Unauthorized("A private room needs an owner: send a bearer token")
    room = await rooms.create(
        session, name=body.name, is_private=body.is_private, owner=user, capacity=body.capacity
    )
    metrics.ROOMS_CREATED.inc()
    return to_out(room, viewer_id=user.id if user else None)


@router.get("/rooms", response_model=list[RoomOut])
async def list_rooms(
    session: Session,
    user: OptionalUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    offset: Offset = 0,
) -> list[RoomOut]:
    """Public rooms and the caller's private rooms."""
    viewer_id = user.id if user else None
    found = await rooms.list_visible(session, viewer_id=viewer_id, limit=limit, offset=offset)
    return [to_out(room, viewer_id=viewer_id) for room in found]


@router.get("/rooms/{room_id}", response_model=RoomOut)
async def get_room(room: VisibleRoom, user: OptionalUser) -> RoomOut:
    """One room; private rooms only for their members."""
    return to_out(room, viewer_id=user.id if user else None)


@router.get("/rooms/{room_id}/members", response_model=list[MemberOut])
async def list_members(room: VisibleRoom, session: Session) -> list[MemberOut]:
    """Members with names and roles."""
    return [
        MemberOut(
            user_id=member.user_id,
            username=username,
            role=member.role,
            joined_at=member.joined_at,
            muted=member.muted,
        )
        for member, username in await repository.list_members(session, room.id)
    ]


@router.post("/rooms/{room_id}/join", response_model=JoinResult)
async def join_room(
    room_id: str,
    session: Session,
    settings: SettingsDep,
    user: OptionalUser,
    body: RoomJoin | None = None,
) -> JoinResult:
    """Join a room (as the token's user; in open mode as the body's ``user_id``)."""
    body = body or RoomJoin()
    actor_id = resolve_actor(settings=settings, token_user=user, claimed_user_id=body.user_id)
    room, member = await rooms.join(
        session, room_id=room_id, user_id=actor_id, invite_code=body.invite_code
    )
    return JoinResult(message=f"User {member.username} joined room {room.name}")
