"""Queries on rooms and memberships."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from videochat.db.models import Room, RoomMember, User


async def get_room(session: AsyncSession, room_id: str) -> Room | None:
    """A room with its members loaded."""
    statement = select(Room).where(Room.id == room_id).options(selectinload(Room.members))
    return (await session.scalars(statement)).first()


async def get_by_invite(session: AsyncSession, invite_code: str) -> Room | None:
    """The room an invite code opens."""
    statement = (
        select(Room).where(Room.invite_code == invite_code).options(selectinload(Room.members))
    )
    return (await session.scalars(statement)).first()


async def list_visible(
    session: AsyncSession, *, user_id: str | None, limit: int, offset: int
) -> Sequence[Room]:
    """Public rooms, and the private rooms the user belongs to, newest last."""
    visible: ColumnElement[bool] = Room.is_private.is_(False)
    if user_id is not None:
        membership = select(RoomMember.room_id).where(RoomMember.user_id == user_id)
        visible = or_(visible, Room.id.in_(membership))
    statement = (
        select(Room)
        .where(visible)
        .options(selectinload(Room.members))
        .order_by(Room.created_at, Room.id)
        .limit(limit)
        .offset(offset)
    )
    return (await session.scalars(statement)).all()


async def get_membership(session: AsyncSession, room_id: str, user_id: str) -> RoomMember | None:
    """The user's membership of the room, if any."""
    return await session.get(RoomMember, (room_id, user_id))


async def list_members(session: AsyncSession, room_id: str) -> Sequence[tuple[RoomMember, str]]:
    """Members with their names, in the order they joined."""
    statement = (
        select(RoomMember, User.username)
        .join(User, User.id == RoomMember.user_id)
        .where(RoomMember.room_id == room_id)
        .order_by(RoomMember.joined_at)
    )
    return [(member, username) for member, username in (await session.execute(statement)).all()]


async def count_rooms(session: AsyncSession) -> int:
    """How many rooms exist."""
    return int(await session.scalar(select(func.count()).select_from(Room)) or 0)
