"""Knocks on a private room: the checks and writes (the caller commits)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.config import LobbySettings
from videochat.db.models import KnockStatus, Room, RoomKnock, RoomMember, RoomRole, User
from videochat.db.unit_of_work import rollback
from videochat.exceptions import BadRequest, Conflict, Forbidden, NotFound
from videochat.kit.clock import isoformat, utcnow
from videochat.rooms import policy, repository
from videochat.rooms import service as rooms
from videochat.rooms.service import ROOM_NOT_FOUND

NOBODY_WAITING = "Nobody by that id is waiting in this room's lobby"
EXPIRED = "expired"


def lobby_frame(
    action: str, *, user_id: str, username: str, by: str | None = None
) -> dict[str, Any]:
    """The frame that tells a room's moderators about their lobby."""
    frame: dict[str, Any] = {
        "type": "lobby",
        "action": action,
        "user_id": user_id,
        "username": username,
        "timestamp": isoformat(utcnow()),
    }
    if by is not None:
        frame["by"] = by
    return frame


def _cutoff(settings: LobbySettings) -> datetime:
    return utcnow() - timedelta(seconds=settings.knock_ttl_seconds)


def status_of(knock: RoomKnock, settings: LobbySettings) -> str:
    """pending, admitted, denied, or expired (pending for too long)."""
    if knock.status == KnockStatus.PENDING.value and knock.created_at <= _cutoff(settings):
        return EXPIRED
    return knock.status


async def _waiting_count(session: AsyncSession, settings: LobbySettings, room_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(RoomKnock)
        .where(
            RoomKnock.room_id == room_id,
            RoomKnock.status == KnockStatus.PENDING.value,
            RoomKnock.created_at > _cutoff(settings),
        )
    )
    return int(count or 0)


async def knock(
    session: AsyncSession, settings: LobbySettings, *, room_id: str, user: User
) -> tuple[Room, RoomKnock | None, bool]:
    """Ask to be let in: (room, knock, whether it is a new knock).

    A member gets (room, None, False): there is nothing to wait for.
    """
    room = await repository.get_room(session, room_id)
    if room is None:
        raise NotFound(ROOM_NOT_FOUND)
    if policy.role_of(room, user.id) is not None:
        return room, None, False
    if not room.is_private:
        raise BadRequest("This room is public: join it directly")
    if await repository.is_banned(session, room_id, user.id):
        raise Forbidden("You are banned from this room and cannot knock")
    knock = await session.get(RoomKnock, (room_id, user.id))
    if knock is not None and status_of(knock, settings) == KnockStatus.PENDING.value:
        return room, knock, False
    # Held until commit: knocks arriving together cannot all see one free place.
    await repository.lock_room(session, room_id)
    if await _waiting_count(session, settings, room_id) >= settings.max_size:
        raise Conflict(f"This room's lobby is full ({settings.max_size} waiting); try again later")
    if knock is None:
        knock = RoomKnock(room_id=room_id, user_id=user.id)
        session.add(knock)
    knock.status = KnockStatus.PENDING.value
    knock.created_at = utcnow()
    knock.decided_at = None
    knock.decided_by = None
    try:
        await session.flush()
    except IntegrityError:  # the same person knocked twice at once: one knock
        # The rollback expired what this session had loaded: load it again.
        await rollback(session)
        await session.refresh(user)
        await session.refresh(room)
        await session.refresh(room, attribute_names=["members"])
        knock = await session.get(RoomKnock, (room_id, user.id), populate_existing=True)
        if knock is None:
            raise
        return room, knock, False
    return room, knock, True


async def mine(session: AsyncSession, *, room_id: str, user_id: str) -> RoomKnock:
    """The caller's own knock on the room."""
    knock = await session.get(RoomKnock, (room_id, user_id))
    if knock is None:
        raise NotFound("You have not knocked on this room")
    return knock


async def withdraw(session: AsyncSession, *, room_id: str, user_id: str) -> None:
    """Stop waiting."""
    result = await session.execute(
        delete(RoomKnock).where(
            RoomKnock.room_id == room_id,
            RoomKnock.user_id == user_id,
            RoomKnock.status == KnockStatus.PENDING.value,
        )
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound("You are not waiting in this room's lobby")


async def _managed_room(session: AsyncSession, room_id: str, actor_id: str) -> Room:
    room = await repository.get_room(session, room_id)
    if room is None or not policy.can_see(room, actor_id):
        raise NotFound(ROOM_NOT_FOUND)
    policy.require_manager(
        room, actor_id, detail="only the room's owner or a moderator can manage its lobby"
    )
    return room


async def waiting(
    session: AsyncSession, settings: LobbySettings, *, room_id: str, actor_id: str
) -> list[tuple[RoomKnock, str]]:
    """Who waits (oldest first), with names; moderators only."""
    await _managed_room(session, room_id, actor_id)
    rows = await session.execute(
        select(RoomKnock, User.username)
        .join(User, User.id == RoomKnock.user_id)
        .where(
            RoomKnock.room_id == room_id,
            RoomKnock.status == KnockStatus.PENDING.value,
            RoomKnock.created_at > _cutoff(settings),
        )
        .order_by(RoomKnock.created_at)
    )
    return [(knock, username) for knock, username in rows]


async def decide(
    session: AsyncSession,
    settings: LobbySettings,
    *,
    room_id: str,
    actor_id: str,
    target_id: str,
    admit: bool,
) -> tuple[Room, User]:
    """Admit (the person becomes a member) or deny a waiting person."""
    room = await _managed_room(session, room_id, actor_id)
    knock = await session.get(RoomKnock, (room_id, target_id))
    if knock is None or status_of(knock, settings) != KnockStatus.PENDING.value:
        raise NotFound(NOBODY_WAITING)
    target = await session.get(User, target_id)
    if target is None:
        raise NotFound(NOBODY_WAITING)
    if admit:
        await rooms.require_room_for_one_more(
            session, room_id=room_id, user_id=target_id, capacity=room.capacity
        )
        if policy.role_of(room, target_id) is None:
            session.add(RoomMember(room_id=room_id, user_id=target_id, role=RoomRole.MEMBER))
    knock.status = (KnockStatus.ADMITTED if admit else KnockStatus.DENIED).value
    knock.decided_at = utcnow()
    knock.decided_by = actor_id
    await session.flush()
    if admit:
        # A new member: every instance's cached view of the room must go.
        repository.forget_room_after_commit(session, room_id)
    await session.refresh(room, attribute_names=["members"])
    return room, target


async def drop_knock(session: AsyncSession, room_id: str, user_id: str) -> None:
    """Forget someone's knock (when they are banned); the caller commits."""
    await session.execute(
        delete(RoomKnock).where(RoomKnock.room_id == room_id, RoomKnock.user_id == user_id)
    )
