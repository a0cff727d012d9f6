"""Who may do what in a room: ranks, visibility, moderators, bans and mutes.

Checks on a room already loaded (the ORM ``Room`` or the cached ``RoomView``), with no
I/O of their own. Ranks: owner > moderator > member; "manages the room" means
moderator or above, and a manager acts only on people ranked below them. Bans and
mutes are read from the ``RoomView``, which carries them (the ORM room does not).
"""

from __future__ import annotations

from videochat.db.models import Room, RoomRole
from videochat.exceptions import BadRequest, Forbidden
from videochat.rooms.repository import MemberView, RoomView

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


def refuse_if_muted(muted: bool) -> None:
    """Raise ``Muted`` for a muted sender (checked by the domain flows, whatever the door)."""
    if muted:
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


def require_member(room: RoomView, user_id: str) -> MemberView:
    """The user's membership; ``Forbidden`` when banned or not a member."""
    if is_banned(room, user_id):
        raise Forbidden(BANNED)
    member = room.member(user_id)
    if member is None:
        raise Forbidden(NOT_A_MEMBER)
    return member


def require_can_post(room: RoomView, user_id: str) -> MemberView:
    """A member who may chat, share media or go live: neither banned nor muted."""
    member = require_member(room, user_id)
    if member.muted:
        raise Muted()
    return member
