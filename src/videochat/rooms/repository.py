"""Queries on rooms and memberships."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from videochat.db.models import Room, RoomBan, RoomInvite, RoomKick, RoomMember, RoomRole, User
from videochat.db.unit_of_work import after_commit
from videochat.kit.cache import cached, invalidate
from videochat.kit.clock import utcnow

ROOM_CACHE = "room"


@dataclass(frozen=True, slots=True)
class MemberView:
    """One membership as plain data: who, with which role, muted or not."""

    user_id: str
    role: RoomRole
    muted: bool
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class RoomView:
    """A room and its members as plain data (what the cache keeps; no ORM session)."""

    id: str
    name: str
    created_at: datetime
    is_private: bool
    owner_id: str | None
    invite_code: str | None
    capacity: int | None
    members: tuple[MemberView, ...]
    # Who is banned: kept here so the socket handshake needs no query of its own (bans
    # and unbans already invalidate the room's view).
    banned: frozenset[str] = frozenset()

    def dump(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies every field, on each join's reload.
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "is_private": self.is_private,
            "owner_id": self.owner_id,
            "invite_code": self.invite_code,
            "capacity": self.capacity,
            "members": [
                {
                    "user_id": m.user_id,
                    "role": m.role.value,
                    "muted": m.muted,
                    "joined_at": m.joined_at.isoformat(),
                }
                for m in self.members
            ],
            "banned": sorted(self.banned),
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> RoomView:
        return cls(
            id=data["id"],
            name=data["name"],
            created_at=datetime.fromisoformat(data["created_at"]),
            is_private=data["is_private"],
            owner_id=data["owner_id"],
            invite_code=data["invite_code"],
            capacity=data["capacity"],
            members=tuple(
                MemberView(
                    user_id=m["user_id"],
                    role=RoomRole(m["role"]),
                    muted=m["muted"],
                    joined_at=datetime.fromisoformat(m["joined_at"]),
                )
                for m in data["members"]
            ),
            banned=frozenset(data["banned"]),
        )

    def member(self, user_id: str | None) -> MemberView | None:
        """The user's membership, or None for a non-member."""
        for member in self.members:
            if member.user_id == user_id:
                return member
        return None


_ROOM_COLUMNS = (
    Room.id,
    Room.name,
    Room.created_at,
    Room.is_private,
    Room.owner_id,
    Room.invite_code,
    Room.capacity,
)
_MEMBER_COLUMNS = (RoomMember.user_id, RoomMember.role, RoomMember.muted, RoomMember.joined_at)
# User ids are UUIDs (kit.ids.new_id): a comma never occurs in one.
_ID_SEPARATOR = ","
# The ids of the users banned from the room, comma-separated (NULL for none).
_BANNED_IDS = (
    select(func.aggregate_strings(RoomBan.user_id, _ID_SEPARATOR))
    .where(RoomBan.room_id == Room.id)
    .scalar_subquery()
    .label("banned")
)
# Built once: constructing it per load was ~7% of a reconnecting socket's handshake.
_ROOM_VIEW = (
    select(*_ROOM_COLUMNS, _BANNED_IDS, *_MEMBER_COLUMNS)
    .outerjoin(RoomMember, RoomMember.room_id == Room.id)
    .where(Room.id == bindparam("room_id"))
    .order_by(RoomMember.joined_at)
)


async def get_room(session: AsyncSession, room_id: str) -> Room | None:
    """A room with its members loaded."""
    statement = select(Room).where(Room.id == room_id).options(selectinload(Room.members))
    return (await session.scalars(statement)).first()


@cached(ROOM_CACHE, key=lambda room_id: room_id, dump=RoomView.dump, load=RoomView.load)
async def get_room_view(session: AsyncSession, room_id: str) -> RoomView | None:
    """The room with its members and roles as plain data, from the cache when it has it."""
    return await load_room_view(session, room_id)


async def load_room_view(session: AsyncSession, room_id: str) -> RoomView | None:
    """The room's view from the database (what the cache keeps; read it through that).

    One query and no ORM objects, as every socket joining a room reloads this view:
    the room joined with its members (a row each), its bans folded into one column.
    """
    rows = (await session.execute(_ROOM_VIEW, {"room_id": room_id})).all()
    if not rows:
        return None
    room = rows[0]
    return RoomView(
        id=room.id,
        name=room.name,
        created_at=room.created_at,
        is_private=room.is_private,
        owner_id=room.owner_id,
        invite_code=room.invite_code,
        capacity=room.capacity,
        # A room without members comes back as one row whose member columns are NULL.
        members=tuple(
            MemberView(row.user_id, row.role, row.muted, row.joined_at)
            for row in rows
            if row.user_id is not None
        ),
        banned=frozenset(room.banned.split(_ID_SEPARATOR)) if room.banned else frozenset(),
    )


async def forget_room(session: AsyncSession, room_id: str) -> None:
    """Drop the room's cached view (after a committed write to the room or its members)."""
    await invalidate(session, ROOM_CACHE, room_id)


def forget_room_after_commit(session: AsyncSession, room_id: str) -> None:
    """Drop the room's cached view once this session's write to it is committed."""
    after_commit(session, partial(forget_room, session, room_id))


async def is_banned(session: AsyncSession, room_id: str, user_id: str) -> bool:
    """Whether the user is banned from the room."""
    return await session.get(RoomBan, (room_id, user_id)) is not None


async def redeem_invite(
    session: AsyncSession, *, room_id: str, code: str, not_before: datetime | None = None
) -> bool:
    """Use an expiring invite for the room; False when unknown, expired, used up, or
    made at or before ``not_before`` (a kick: the kicked person's old invites)."""
    invite = await session.get(RoomInvite, code)
    if invite is None or invite.room_id != room_id or invite.expires_at <= utcnow():
        return False
    if not_before is not None and invite.created_at <= not_before:
        return False
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return False
    result = await session.execute(
        update(RoomInvite)
        .where(RoomInvite.code == code, RoomInvite.uses == invite.uses)
        .values(uses=invite.uses + 1)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def get_kick(session: AsyncSession, room_id: str, user_id: str) -> RoomKick | None:
    """When (and by whom) the user was last kicked from the room, if ever."""
    return await session.get(RoomKick, (room_id, user_id))


async def list_visible(
    session: AsyncSession,
    *,
    user_id: str | None,
    limit: int,
    offset: int = 0,
    before: tuple[datetime, str] | None = None,
) -> Sequence[Room]:
    """Public rooms, and the private rooms the user belongs to, newest first.

    ``before`` is the (created_at, id) of the last room of the previous page: a keyset,
    so rooms created while a client pages never shift a page or repeat a room.
    """
    visible: ColumnElement[bool] = Room.is_private.is_(False)
    if user_id is not None:
        membership = select(RoomMember.room_id).where(RoomMember.user_id == user_id)
        visible = or_(visible, Room.id.in_(membership))
    if before is not None:
        created_at, room_id = before
        visible = and_(
            visible,
            or_(
                Room.created_at < created_at,
                and_(Room.created_at == created_at, Room.id < room_id),
            ),
        )
    statement = (
        select(Room)
        .where(visible)
        .options(selectinload(Room.members))
        .order_by(Room.created_at.desc(), Room.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return (await session.scalars(statement)).all()


async def remove_member(session: AsyncSession, room_id: str, user_id: str) -> None:
    """Delete the user's membership of the room, if any (the caller commits)."""
    await session.execute(
        delete(RoomMember).where(RoomMember.room_id == room_id, RoomMember.user_id == user_id)
    )


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


async def lock_room(session: AsyncSession, room_id: str) -> None:
    """Hold the room until this session commits, so a count and the write it allows are one.

    Capacity and lobby checks count rows and then insert one: two requests at once
    would both see room for one more. PostgreSQL takes a row lock on the room; on
    SQLite a no-op write to it takes the database's write lock (writers queue on it),
    and the count that follows reads after every earlier writer has committed.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(Room.id).where(Room.id == room_id).with_for_update())
    else:
        await session.execute(
            update(Room)
            .where(Room.id == room_id)
            .values(id=Room.id)
            .execution_options(synchronize_session=False)
        )


async def count_members(session: AsyncSession, room_id: str) -> int:
    """How many members the room has now (not the cached view's count)."""
    statement = select(func.count()).select_from(RoomMember).where(RoomMember.room_id == room_id)
    return int(await session.scalar(statement) or 0)
