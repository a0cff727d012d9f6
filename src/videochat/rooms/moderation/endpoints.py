"""HTTP routes for moderation: roles, kick, ban, mute, invites."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter

from videochat.accounts.auth import CurrentUser
from videochat.context import Context, Session
from videochat.db.models import RoomRole
from videochat.db.unit_of_work import after_commit
from videochat.rooms.moderation import consequences
from videochat.rooms.moderation import service as moderation
from videochat.rooms.moderation.schemas import InviteCreate, InviteOut, RoleChange
from videochat.rooms.moderation.service import KICKED, moderation_frame, removed_reason
from videochat.rooms.schemas import JoinResult, RoomOut
from videochat.rooms.service import to_out

router = APIRouter(tags=["moderation"])


def _announce(
    session: Session, context: Context, room_id: str, frame: dict[str, Any], **control: Any
) -> None:
    """Tell the room (and close or mute sockets) once the action is committed."""
    after_commit(session, partial(context.hub.publish, room_id, frame, control=control or None))


@router.post("/rooms/{room_id}/members/{user_id}/role", response_model=JoinResult)
async def change_role(
    room_id: str,
    user_id: str,
    body: RoleChange,
    session: Session,
    user: CurrentUser,
    context: Context,
) -> JoinResult:
    """Promote a member to moderator or demote a moderator (owner only)."""
    role = RoomRole(body.role)
    await moderation.set_role(
        session, room_id=room_id, actor_id=user.id, target_id=user_id, role=role
    )
    action = "promote" if role is RoomRole.MODERATOR else "demote"
    _announce(
        session,
        context,
        room_id,
        moderation_frame(action, user_id=user_id, by=user.id, role=role.value),
    )
    return JoinResult(message=f"{user_id} is now {role.value}")


async def _remove(
    session: Session, context: Context, room_id: str, user_id: str, *, by: str, action: str
) -> None:
    """After a kick or ban: tell the room, close the person's sockets, apply consequences."""
    _announce(
        session,
        context,
        room_id,
        moderation_frame(action, user_id=user_id, by=by),
        disconnect=user_id,
        code=KICKED,
        reason=removed_reason(action),
    )
    await consequences.apply(action, session, context, room_id, user_id)


@router.post("/rooms/{room_id}/members/{user_id}/kick", response_model=JoinResult)
async def kick(
    room_id: str, user_id: str, session: Session, user: CurrentUser, context: Context
) -> JoinResult:
    """Remove someone from the room and close their sockets."""
    await moderation.kick(session, room_id=room_id, actor_id=user.id, target_id=user_id)
    await _remove(session, context, room_id, user_id, by=user.id, action="kick")
    return JoinResult(message=f"{user_id} was removed from the room")


@router.post("/rooms/{room_id}/members/{user_id}/ban", response_model=JoinResult)
async def ban(
    room_id: str, user_id: str, session: Session, user: CurrentUser, context: Context
) -> JoinResult:
    """Remove someone and keep them out."""
    await moderation.ban(session, room_id=room_id, actor_id=user.id, target_id=user_id)
    await _remove(session, context, room_id, user_id, by=user.id, action="ban")
    return JoinResult(message=f"{user_id} was banned from the room")


@router.get("/rooms/{room_id}/bans", response_model=list[str])
async def list_bans(room_id: str, session: Session, user: CurrentUser) -> list[str]:
    """Who is banned (moderators only)."""
    return await moderation.list_bans(session, room_id=room_id, actor_id=user.id)


@router.delete("/rooms/{room_id}/bans/{user_id}", response_model=JoinResult)
async def unban(
    room_id: str, user_id: str, session: Session, user: CurrentUser, context: Context
) -> JoinResult:
    """Lift a ban."""
    await moderation.unban(session, room_id=room_id, actor_id=user.id, target_id=user_id)
    _announce(session, context, room_id, moderation_frame("unban", user_id=user_id, by=user.id))
    return JoinResult(message=f"{user_id} may join again")


async def _set_muted(
    room_id: str, user_id: str, session: Session, user: CurrentUser, context: Context, muted: bool
) -> JoinResult:
    await moderation.set_muted(
        session, room_id=room_id, actor_id=user.id, target_id=user_id, muted=muted
    )
    action = "mute" if muted else "unmute"
    _announce(
        session,
        context,
        room_id,
        moderation_frame(action, user_id=user_id, by=user.id),
        mute=user_id,
        muted=muted,
    )
    if muted:
        await consequences.apply("mute", session, context, room_id, user_id)
    return JoinResult(message=f"{user_id} is {'muted' if muted else 'no longer muted'}")


@router.post("/rooms/{room_id}/members/{user_id}/mute", response_model=JoinResult)
async def mute(
    room_id: str, user_id: str, session: Session, user: CurrentUser, context: Context
) -> JoinResult:
    """Stop someone from chatting and turning on mic, camera or screen."""
    return await _set_muted(room_id, user_id, session, user, context, True)


@router.post("/rooms/{room_id}/members/{user_id}/unmute", response_model=JoinResult)
async def unmute(
    room_id: str, user_id: str, session: Session, user: CurrentUser, context: Context
) -> JoinResult:
    """Let a muted member speak again."""
    return await _set_muted(room_id, user_id, session, user, context, False)


@router.post("/rooms/{room_id}/invites", response_model=InviteOut, status_code=201)
async def create_invite(
    room_id: str, body: InviteCreate, session: Session, user: CurrentUser
) -> InviteOut:
    """An expiring invite code for a private room (owner or moderators)."""
    invite = await moderation.create_invite(
        session,
        room_id=room_id,
        actor_id=user.id,
        expires_in_seconds=body.expires_in_seconds,
        max_uses=body.max_uses,
    )
    return InviteOut(
        code=invite.code,
        room_id=invite.room_id,
        expires_at=invite.expires_at,
        max_uses=invite.max_uses,
        uses=invite.uses,
    )


@router.post("/rooms/{room_id}/invite-code", response_model=RoomOut)
async def rotate_invite_code(room_id: str, session: Session, user: CurrentUser) -> RoomOut:
    """A new permanent invite code for a private room; the old one stops working."""
    room = await moderation.set_invite_code(session, room_id=room_id, actor_id=user.id, rotate=True)
    return to_out(room, viewer_id=user.id)


@router.delete("/rooms/{room_id}/invite-code", response_model=RoomOut)
async def revoke_invite_code(room_id: str, session: Session, user: CurrentUser) -> RoomOut:
    """No permanent invite code any more (expiring invites and the lobby still work)."""
    room = await moderation.set_invite_code(
        session, room_id=room_id, actor_id=user.id, rotate=False
    )
    return to_out(room, viewer_id=user.id)
