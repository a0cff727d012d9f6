"""When a guest signs out: their account ends, and their rooms pass to the next in line.

A guest has no password: once the browser forgets the token, nobody can ever act as
that guest again. Before this, signing out left the guest's rooms with an owner nobody
could be (private rooms with no one able to invite, admit or moderate). Now signing out
ends the guest account (``DELETE /users/me``):

- each room they own passes to its longest-standing moderator, or, without one, to its
  longest-standing member (unmuted people first; an heir's mute is lifted, as nobody
  ranks above an owner); a room with nobody else in it keeps no owner;
- they leave every room (their sockets close with 4001, so another tab of theirs finds
  the session over), and what a kick does to their live streams is done;
- the account is deleted: the token stops working; chat history keeps their name (the
  messages keep ``username``), their videos and recordings stay in the rooms.

Registered accounts sign out with ``POST /auth/logout`` and keep everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.db.models import Room, RoomMember, RoomRole
from videochat.rooms import policy, repository


@dataclass(frozen=True, slots=True)
class Handover:
    """A room that changed hands; ``heir`` None when nobody was left to take it."""

    room_id: str
    heir: str | None
    heir_was_muted: bool = False


def choose_heir(members: list[RoomMember], leaving: str) -> RoomMember | None:
    """The moderator, else the member, who has been in the room longest (unmuted first)."""
    others = [member for member in members if member.user_id != leaving]
    if not others:
        return None
    return min(
        others,
        key=lambda member: (
            member.muted,
            -policy.RANK[member.role],
            member.joined_at,
            member.user_id,
        ),
    )


async def rooms_of(session: AsyncSession, user_id: str) -> list[str]:
    """The ids of the rooms the user is a member of."""
    statement = select(RoomMember.room_id).where(RoomMember.user_id == user_id)
    return list((await session.scalars(statement)).all())


async def hand_over_rooms(session: AsyncSession, user_id: str) -> list[Handover]:
    """Pass every room ``user_id`` owns to its heir (see the module); nothing is committed."""
    owned = select(Room).where(Room.owner_id == user_id).order_by(Room.created_at, Room.id)
    handovers = []
    for room in (await session.scalars(owned)).all():
        of_room = select(RoomMember).where(RoomMember.room_id == room.id)
        members = list((await session.scalars(of_room)).all())
        heir = choose_heir(members, user_id)
        if heir is not None:
            await session.execute(
                update(RoomMember)
                .where(RoomMember.room_id == room.id, RoomMember.user_id == heir.user_id)
                .values(role=RoomRole.OWNER, muted=False, muted_by=None)
            )
        room.owner_id = heir.user_id if heir is not None else None
        repository.forget_room_after_commit(session, room.id)
        handovers.append(
            Handover(room.id, heir.user_id, heir.muted) if heir else Handover(room.id, None)
        )
    return handovers
