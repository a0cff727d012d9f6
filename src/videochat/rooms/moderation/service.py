"""The moderation actions: checks by rooms.policy, writes left for the caller to commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.accounts import repository as users_repository
from videochat.db.models import Room, RoomBan, RoomInvite, RoomKick, RoomMember, RoomRole
from videochat.exceptions import BadRequest, Forbidden, NotFound
from videochat.kit.clock import isoformat, utcnow
from videochat.kit.ids import new_secret
from videochat.rooms import policy, repository
from videochat.rooms.lobby.service import drop_knock
from videochat.rooms.service import ROOM_NOT_FOUND

KICKED = 4003  # close code for a socket whose user was kicked or banned


def removed_reason(action: str) -> str:
    """The close reason of the sockets of a user kicked (``kick``) or banned (``ban``)."""
    return f"{'kicked' if action == 'kick' else 'banned'} from the room"


OUTRANKED_UNDO = "a moderator cannot undo what the room's owner decided"


def moderation_frame(action: str, *, user_id: str, by: str, **extra: Any) -> dict[str, Any]:
    """The frame that tells a room what a moderator did."""
    return {
        "type": "moderation",
        "action": action,
        "user_id": user_id,
        "by": by,
        "timestamp": isoformat(utcnow()),
        **extra,
    }


async def _room_for(session: AsyncSession, room_id: str, actor_id: str) -> Room:
    room = await repository.get_room(session, room_id)
    if room is None or not policy.can_see(room, actor_id):
        raise NotFound(ROOM_NOT_FOUND)
    return room


async def set_role(
    session: AsyncSession, *, room_id: str, actor_id: str, target_id: str, role: RoomRole
) -> None:
    """Promote to moderator or demote to member; the owner only."""
    room = await _room_for(session, room_id, actor_id)
    policy.require_owner(room, actor_id, detail="only the room's owner can change roles")
    if role is RoomRole.OWNER:
        raise BadRequest("a room has one owner; ownership cannot be given away yet")
    if target_id == actor_id:
        raise BadRequest("you cannot do that to yourself")
    if policy.role_of(room, target_id) is None:
        raise NotFound("That user is not a member of this room")
    await session.execute(
        update(RoomMember)
        .where(RoomMember.room_id == room_id, RoomMember.user_id == target_id)
        .values(role=role)
    )
    repository.forget_room_after_commit(session, room_id)


async def kick(session: AsyncSession, *, room_id: str, actor_id: str, target_id: str) -> None:
    """Remove someone from the room.

    A public room may be joined again at once. For a private room the kick is
    remembered: only an invite code made after it lets them back (see
    rooms.service.join), so the codes they already had, the permanent one included,
    stop working for them and keep working for everyone else.
    """
    room = await _room_for(session, room_id, actor_id)
    if policy.require_outranks(room, actor_id, target_id) is None:
        raise NotFound("That user is not a member of this room")
    await repository.remove_member(session, room_id, target_id)
    if room.is_private:
        await session.merge(
            RoomKick(room_id=room_id, user_id=target_id, kicked_at=utcnow(), kicked_by=actor_id)
        )
    repository.forget_room_after_commit(session, room_id)


async def ban(session: AsyncSession, *, room_id: str, actor_id: str, target_id: str) -> None:
    """Remove someone and keep them out."""
    room = await _room_for(session, room_id, actor_id)
    policy.require_outranks(room, actor_id, target_id)
    if await users_repository.get_user(session, target_id) is None:
        raise NotFound("User not found")
    await repository.remove_member(session, room_id, target_id)
    await drop_knock(session, room_id, target_id)
    if not await repository.is_banned(session, room_id, target_id):
        session.add(RoomBan(room_id=room_id, user_id=target_id, banned_by=actor_id))
    repository.forget_room_after_commit(session, room_id)


async def unban(session: AsyncSession, *, room_id: str, actor_id: str, target_id: str) -> None:
    """Let a banned person join again."""
    room = await _room_for(session, room_id, actor_id)
    policy.require_outranks(room, actor_id, target_id)
    ban = await session.get(RoomBan, (room_id, target_id))
    if ban is None:
        raise NotFound("That user is not banned from this room")
    if not policy.may_undo(room, actor_id, ban.banned_by):
        raise Forbidden(OUTRANKED_UNDO)
    await session.delete(ban)
    repository.forget_room_after_commit(session, room_id)


async def set_muted(
    session: AsyncSession, *, room_id: str, actor_id: str, target_id: str, muted: bool
) -> None:
    """Mute or unmute a member."""
    room = await _room_for(session, room_id, actor_id)
    if policy.require_outranks(room, actor_id, target_id) is None:
        raise NotFound("That user is not a member of this room")
    membership = next(m for m in room.members if m.user_id == target_id)
    if membership.muted and not policy.may_undo(room, actor_id, membership.muted_by):
        raise Forbidden(OUTRANKED_UNDO)
    await session.execute(
        update(RoomMember)
        .where(RoomMember.room_id == room_id, RoomMember.user_id == target_id)
        .values(muted=muted, muted_by=actor_id if muted else None)
    )
    repository.forget_room_after_commit(session, room_id)


async def create_invite(
    session: AsyncSession,
    *,
    room_id: str,
    actor_id: str,
    expires_in_seconds: int,
    max_uses: int | None,
) -> RoomInvite:
    """An invite code that expires (and may be limited to a number of uses)."""
    room = await _room_for(session, room_id, actor_id)
    policy.require_manager(
        room, actor_id, detail="only the room's owner or a moderator can create invites"
    )
    invite = RoomInvite(
        code=new_secret(12),
        room_id=room_id,
        created_by=actor_id,
        expires_at=utcnow() + timedelta(seconds=expires_in_seconds),
        max_uses=max_uses,
    )
    session.add(invite)
    await session.flush()  # its defaults, for the answer
    return invite


async def set_invite_code(
    session: AsyncSession, *, room_id: str, actor_id: str, rotate: bool
) -> Room:
    """Give a private room a new permanent invite code, or none (revoke)."""
    room = await _room_for(session, room_id, actor_id)
    policy.require_manager(
        room, actor_id, detail="only the room's owner or a moderator can change the invite code"
    )
    if not room.is_private:
        raise BadRequest("A public room has no invite code: anyone may join it")
    room.invite_code = new_secret(12) if rotate else None
    room.invite_code_issued_at = utcnow() if rotate else None
    await session.flush()
    repository.forget_room_after_commit(session, room_id)
    return room


async def list_bans(session: AsyncSession, *, room_id: str, actor_id: str) -> list[str]:
    """Ids of the users banned from the room (moderators only)."""
    room = await _room_for(session, room_id, actor_id)
    policy.require_manager(
        room, actor_id, detail="only the room's owner or a moderator can see bans"
    )
    rows = await session.scalars(select(RoomBan.user_id).where(RoomBan.room_id == room_id))
    return list(rows)
