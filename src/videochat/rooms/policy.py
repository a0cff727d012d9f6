"""Who may do what in a room: ranks, visibility, moderators, bans and mutes.

Checks on a room already loaded (the ORM ``Room`` or the cached ``RoomView``), with no
I/O of their own. Ranks: owner > moderator > member; "manages the room" means
moderator or above, and a manager acts only on people ranked below them. Bans and
mutes are read from the ``RoomView``, which carries them (the ORM room does not).

Standing rules: every route and socket frame names its ``Act`` and asks ``require_may``
(HTTP, with the room's view) or ``refuse_if_muted`` (a socket, whose muted flag the
moderation frames keep current).

- Banned: nothing. Sockets are refused and closed (4003); uploads, tus, live streams
  and WHIP answer 403; their unfinished uploads are failed ("the uploader was banned",
  never announced, never published) and their live streams ended without an archive.
  Videos that were already ``ready`` stay in the library.
- Kicked: no longer a member. A public room may be joined again; a private room only
  with an invite code made after the kick (a code they already had does not work).
  Their live streams end (the archive is kept).
- Muted: may watch and listen, nothing more. Refused: chat, edits, reactions, typing,
  turning mic/camera/screen on, uploading (new slots and old ones), renaming videos
  and going live (new streams, WHIP; a live stream ends when the mute lands).
  Deleting one's own message or video is allowed (it removes, it does not speak).
  Call signalling is relayed, as a muted member must be able to receive the others'
  media: ICE candidates and hellos unchanged, and every SDP description they send is
  made receive-only (``sendrecv`` becomes ``recvonly``, ``sendonly`` becomes
  ``inactive``), so whatever their browser sends, the others' browsers never accept
  media from them in a negotiation made while muted.
"""

from __future__ import annotations

import enum

from videochat.db.models import Room, RoomRole
from videochat.exceptions import BadRequest, Forbidden
from videochat.rooms.repository import RoomView

RANK = {RoomRole.OWNER: 3, RoomRole.MODERATOR: 2, RoomRole.MEMBER: 1}
BANNED = "You are banned from this room"
NOT_A_MEMBER = "Only members of the room can do that: join it first"
MUTED = "a moderator has muted you here"

AnyRoom = Room | RoomView


class Muted(Forbidden):
    """The sender is muted in this room: no chat, reactions, mic or camera."""

    frame_code = "muted"

    def __init__(self) -> None:
        super().__init__(MUTED)


class Act(enum.Enum):
    """Something done in a room whose permission depends on one's standing there."""

    CHAT = "chat"  # post, edit, react
    TYPE = "type"
    DELETE_OWN = "delete own message"
    MEDIA_ON = "turn mic, camera or screen on"
    UPLOAD = "upload a video"
    RENAME_VIDEO = "rename a video"
    DELETE_VIDEO = "delete a video"
    GO_LIVE = "go live"
    WATCH = "watch and listen"  # incl. the call signalling needed to receive


# What a muted member may still do; everything else is refused while muted.
MUTED_MAY = frozenset({Act.DELETE_OWN, Act.DELETE_VIDEO, Act.WATCH})
# What needs membership; the rest needs only a room one may see (public rooms: anyone).
MEMBERS_ONLY = frozenset({Act.GO_LIVE})


def refuse_if_muted(muted: bool, act: Act = Act.CHAT) -> None:
    """Raise ``Muted`` when a muted sender tries what a mute forbids (socket frames)."""
    if muted and act not in MUTED_MAY:
        raise Muted()


def role_of(room: AnyRoom, user_id: str | None) -> RoomRole | None:
    """The user's role in the room, or None for a non-member."""
    for member in room.members:
        if member.user_id == user_id:
            return member.role
    return None


def can_see(room: AnyRoom, user_id: str | None) -> bool:
    """Public rooms are visible to anyone; private ones only to their members."""
    if not room.is_private:
        return True
    return user_id is not None and role_of(room, user_id) is not None


def is_manager_role(role: RoomRole | None) -> bool:
    """Whether the role is moderator or above."""
    return role is not None and RANK[role] >= RANK[RoomRole.MODERATOR]


def manages(room: AnyRoom, user_id: str | None) -> bool:
    """Whether the user is the room's owner or one of its moderators."""
    return is_manager_role(role_of(room, user_id))


def managers(room: AnyRoom) -> list[str]:
    """The ids of the room's owner and moderators."""
    return [member.user_id for member in room.members if is_manager_role(member.role)]


def require_manager(room: AnyRoom, user_id: str, *, detail: str) -> RoomRole:
    """The user's role when it is moderator or above; ``Forbidden(detail)`` otherwise."""
    role = role_of(room, user_id)
    if role is None or not is_manager_role(role):
        raise Forbidden(detail)
    return role


def require_owner(room: AnyRoom, user_id: str, *, detail: str) -> None:
    """``Forbidden(detail)`` unless the user owns the room."""
    if role_of(room, user_id) is not RoomRole.OWNER:
        raise Forbidden(detail)


def require_outranks(room: AnyRoom, actor_id: str, target_id: str) -> RoomRole | None:
    """Allow a manager acting on someone ranked below them; the target's role (None if none)."""
    actor = require_manager(
        room, actor_id, detail="only the room's owner or a moderator can do that"
    )
    if target_id == actor_id:
        raise BadRequest("you cannot do that to yourself")
    target = role_of(room, target_id)
    if target is not None and RANK[target] >= RANK[actor]:
        raise Forbidden("you can only act on people ranked below you")
    return target


def is_banned(room: RoomView, user_id: str) -> bool:
    """Whether the user is banned from the room."""
    return user_id in room.banned


def require_may(room: RoomView, user_id: str | None, act: Act) -> None:
    """``Forbidden`` (or ``Muted``) unless the user's standing in the room allows ``act``.

    ``user_id`` None is the anonymous caller of open auth mode: nothing to check.
    """
    if user_id is None:
        return
    if is_banned(room, user_id):
        raise Forbidden(BANNED)
    member = room.member(user_id)
    if member is None and (act in MEMBERS_ONLY or room.is_private):
        raise Forbidden(NOT_A_MEMBER)
    if member is not None:
        refuse_if_muted(member.muted, act)


def may_undo(room: AnyRoom, actor_id: str, done_by: str | None) -> bool:
    """Whether the actor may undo a ban or mute made by ``done_by`` (not by a higher rank)."""
    actor = role_of(room, actor_id)
    if actor is RoomRole.OWNER or done_by is None or done_by == actor_id:
        return True
    by = role_of(room, done_by)
    return actor is not None and (by is None or RANK[by] <= RANK[actor])


def may_delete_message(room: AnyRoom, actor_id: str, author_id: str | None) -> bool:
    """The author deletes their own; a manager deletes those of people ranked below them."""
    if author_id == actor_id:
        return True
    actor = role_of(room, actor_id)
    if not is_manager_role(actor):
        return False
    assert actor is not None
    author = role_of(room, author_id)
    return actor is RoomRole.OWNER or author is None or RANK[author] < RANK[actor]


def may_manage_video(room: AnyRoom, actor_id: str, uploader_id: str | None) -> bool:
    """Rename or delete a video: the rule of messages (the uploader, or a manager who
    outranks them; the owner always)."""
    return may_delete_message(room, actor_id, uploader_id)
