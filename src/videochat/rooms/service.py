"""Room rules: who may see a room, who may join it, who owns it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.accounts import repository as users_repository
from videochat.db.models import Room, RoomBan, RoomKick, RoomMember, RoomRole, User
from videochat.db.unit_of_work import commit, rollback
from videochat.exceptions import Forbidden, NotFound
from videochat.kit.clock import utcnow
from videochat.kit.ids import new_secret
from videochat.rooms import policy, repository
from videochat.rooms.repository import MemberView, RoomView
from videochat.rooms.schemas import RoomOut

ROOM_NOT_FOUND = "Room not found"
NEEDS_INVITE = "This room is private: a valid invite is needed to join"
KICKED_NEEDS_NEW_INVITE = (
    "You were removed from this room: the invite you have is no longer valid for you, "
    "ask for a new one"
)


def to_out(room: Room | RoomView, *, viewer_id: str | None) -> RoomOut:
    """The public shape of a room; the invite code only for its managers."""
    return RoomOut(
        id=room.id,
        name=room.name,
        created_at=room.created_at,
        is_private=room.is_private,
        owner_id=room.owner_id,
        users=[member.user_id for member in room.members],
        invite_code=room.invite_code if policy.manages(room, viewer_id) else None,
        capacity=room.capacity,
        roles={member.user_id: member.role.value for member in room.members},
    )


async def create(
    session: AsyncSession,
    *,
    name: str,
    is_private: bool,
    owner: User | None,
    capacity: int | None = None,
) -> Room:
    """Create a room; its creator (when known) becomes the owner."""
    room = Room(
        name=name,
        is_private=is_private,
        owner_id=owner.id if owner else None,
        invite_code=new_secret(12) if is_private else None,
        capacity=capacity,
        # Set explicitly (even empty) so the response never lazy-loads it.
        members=[RoomMember(user_id=owner.id, role=RoomRole.OWNER)] if owner else [],
    )
    session.add(room)
    await session.flush()  # its id and timestamps, for the answer
    return room


async def get_visible(session: AsyncSession, room_id: str, *, viewer_id: str | None) -> Room:
    """The room, or 404 when it does not exist or the viewer may not see it."""
    room = await repository.get_room(session, room_id)
    # A private room is "not found" to outsiders so its existence does not leak.
    if room is None or not policy.can_see(room, viewer_id):
        raise NotFound(ROOM_NOT_FOUND)
    return room


async def get_visible_view(
    session: AsyncSession, room_id: str, *, viewer_id: str | None
) -> RoomView:
    """Like get_visible, as plain data from the read cache (for read-only paths)."""
    room = await repository.get_room_view(session, room_id)
    if room is None or not policy.can_see(room, viewer_id):
        raise NotFound(ROOM_NOT_FOUND)
    return room


async def list_visible(
    session: AsyncSession,
    *,
    viewer_id: str | None,
    limit: int,
    offset: int = 0,
    before: tuple[datetime, str] | None = None,
) -> Sequence[Room]:
    """The rooms this viewer may see, newest first (``before``: a page's last room)."""
    return await repository.list_visible(
        session, user_id=viewer_id, limit=limit, offset=offset, before=before
    )


async def join(
    session: AsyncSession, *, room_id: str, user_id: str, invite_code: str | None
) -> tuple[Room, User]:
    """Make the user a member; private rooms need membership already or the invite."""
    room = await repository.get_room(session, room_id)
    if room is None:
        raise NotFound(ROOM_NOT_FOUND)
    user = await users_repository.get_user(session, user_id)
    if user is None:
        raise NotFound("User not found")
    if policy.role_of(room, user_id) is not None:
        return room, user
    if await repository.is_banned(session, room_id, user_id):
        raise Forbidden(policy.BANNED)
    if room.is_private:
        await _admit_with_code(session, room=room, user_id=user_id, code=invite_code)
    await require_room_for_one_more(
        session, room_id=room.id, user_id=user_id, capacity=room.capacity
    )
    await _add_member(session, room=room, user_id=user_id)
    return room, user


async def _admit_with_code(
    session: AsyncSession, *, room: Room, user_id: str, code: str | None
) -> None:
    """Forbidden unless the code is the room's (permanent or a live invite) and, for
    someone kicked, was made after the kick: a code they already had stays dead."""
    if not code:
        raise Forbidden(NEEDS_INVITE)
    kick = await repository.get_kick(session, room.id, user_id)
    kicked_at = kick.kicked_at if kick else None
    if code == room.invite_code:
        issued = room.invite_code_issued_at or room.created_at
        if kicked_at is not None and issued <= kicked_at:
            raise Forbidden(KICKED_NEEDS_NEW_INVITE)
    elif not await repository.redeem_invite(
        session, room_id=room.id, code=code, not_before=kicked_at
    ):
        raise Forbidden(KICKED_NEEDS_NEW_INVITE if kicked_at else NEEDS_INVITE)
    if kick is not None:  # invited again: the kick is settled
        await session.execute(
            delete(RoomKick).where(RoomKick.room_id == room.id, RoomKick.user_id == user_id)
        )


async def require_may(
    session: AsyncSession, room_id: str, *, user_id: str | None, act: policy.Act
) -> RoomView:
    """The room's view when the user's standing there allows ``act`` (rooms.policy).

    404 for an unknown room, 403 (``Muted`` for a mute) otherwise; from the read cache,
    which every ban, kick and mute invalidates.
    """
    room = await repository.get_room_view(session, room_id)
    if room is None:
        raise NotFound(ROOM_NOT_FOUND)
    policy.require_may(room, user_id, act)
    return room


async def require_room_for_one_more(
    session: AsyncSession, *, room_id: str, user_id: str, capacity: int | None
) -> None:
    """Forbidden when the room is full; holds the room until commit (concurrent joins)."""
    if capacity is None:
        return
    await repository.lock_room(session, room_id)
    if await repository.get_membership(session, room_id, user_id) is not None:
        return  # joined meanwhile (another tab): the insert finds the duplicate
    if await repository.count_members(session, room_id) >= capacity:
        raise Forbidden(f"This room is full ({capacity} members)")


async def standing_now(
    session: AsyncSession, *, room_id: str, user_id: str
) -> tuple[str | None, bool]:
    """The user's standing in the room, read from the database (not the cache): what put
    them out ("ban", "kick", or None: still a member) and whether they are muted. A
    ban also removes the membership the user's socket admission may have added after it.
    Commits itself, like ``ensure_member_for_socket``."""
    banned = exists().where(RoomBan.room_id == room_id, RoomBan.user_id == user_id)
    muted = (
        select(RoomMember.muted)
        .where(RoomMember.room_id == room_id, RoomMember.user_id == user_id)
        .scalar_subquery()
    )
    is_banned, is_muted = (await session.execute(select(banned, muted))).one()
    is_member = is_muted is not None
    if is_banned:
        if is_member:
            await repository.remove_member(session, room_id, user_id)
            repository.forget_room_after_commit(session, room_id)
            await commit(session)
        return "ban", False
    return (None, bool(is_muted)) if is_member else ("kick", False)


async def ensure_member_for_socket(
    session: AsyncSession, *, room: RoomView, user_id: str
) -> MemberView:
    """Connecting to a public room joins it, as in the prototype.

    Works on the cached view: a member (the usual reconnect) costs no query at all;
    a newcomer costs one insert, after which the room's view is invalidated.

    Unlike the other writes here, this one commits itself: its caller is the socket
    handshake, whose session belongs to no request or frame that would commit it.
    """
    member = room.member(user_id)
    if member is not None:
        return member
    if room.capacity is not None and len(room.members) >= room.capacity:
        raise Forbidden(f"This room is full ({room.capacity} members)")  # no write needed
    joined = MemberView(user_id, RoomRole.MEMBER, muted=False, joined_at=utcnow())
    try:
        await require_room_for_one_more(
            session, room_id=room.id, user_id=user_id, capacity=room.capacity
        )
        # A plain INSERT: the ORM's unit of work is most of a flush's cost here.
        await session.execute(
            insert(RoomMember).values(
                room_id=room.id,
                user_id=user_id,
                role=joined.role,
                muted=joined.muted,
                joined_at=joined.joined_at,
            )
        )
        repository.forget_room_after_commit(session, room.id)
        await commit(session)
    except IntegrityError:  # joined concurrently from another request: read that one
        await rollback(session)
        existing = await repository.get_membership(session, room.id, user_id)
        if existing is None:  # not a duplicate: the room went away meanwhile
            raise NotFound(ROOM_NOT_FOUND) from None
        return MemberView(existing.user_id, existing.role, existing.muted, existing.joined_at)
    return joined


async def _add_member(session: AsyncSession, *, room: Room, user_id: str) -> None:
    session.add(RoomMember(room_id=room.id, user_id=user_id, role=RoomRole.MEMBER))
    try:
        await session.flush()
    except IntegrityError:  # joined concurrently from another request: fine
        # The rollback expired everything loaded in this session; load it again
        # here, or the caller's next attribute access would be lazy I/O.
        await rollback(session)
        await session.refresh(room)
        await session.refresh(room, attribute_names=["members"])
        user = await session.get(User, user_id)
        if user is not None:
            await session.refresh(user)
        return
    repository.forget_room_after_commit(session, room.id)
    await session.refresh(room, attribute_names=["members"])
