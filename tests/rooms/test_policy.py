"""rooms.policy: ranks, visibility, managers, bans and mutes, on a room's view."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from videochat.db.models import RoomRole
from videochat.exceptions import BadRequest, Forbidden
from videochat.rooms import policy
from videochat.rooms.repository import MemberView, RoomView

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _room(*, private: bool = True, banned: frozenset[str] = frozenset()) -> RoomView:
    members = (
        MemberView("owner", RoomRole.OWNER, muted=False, joined_at=NOW),
        MemberView("mod", RoomRole.MODERATOR, muted=False, joined_at=NOW),
        MemberView("member", RoomRole.MEMBER, muted=False, joined_at=NOW),
        MemberView("quiet", RoomRole.MEMBER, muted=True, joined_at=NOW),
    )
    return RoomView(
        id="r",
        name="Room",
        created_at=NOW,
        is_private=private,
        owner_id="owner",
        invite_code=None,
        capacity=None,
        members=members,
        banned=banned,
    )


def test_visibility_and_roles() -> None:
    room = _room()
    assert policy.role_of(room, "mod") is RoomRole.MODERATOR
    assert policy.role_of(room, "stranger") is None
    assert policy.can_see(room, "member") and not policy.can_see(room, "stranger")
    assert not policy.can_see(room, None)
    assert policy.can_see(_room(private=False), None)


def test_managers_are_moderators_and_above() -> None:
    room = _room()
    assert policy.managers(room) == ["owner", "mod"]
    assert policy.manages(room, "mod") and not policy.manages(room, "member")
    assert policy.require_manager(room, "owner", detail="no") is RoomRole.OWNER
    with pytest.raises(Forbidden, match="no"):
        policy.require_manager(room, "member", detail="no")
    with pytest.raises(Forbidden):
        policy.require_owner(room, "mod", detail="owner only")


def test_a_manager_acts_only_on_people_ranked_below() -> None:
    room = _room()
    assert policy.require_outranks(room, "mod", "member") is RoomRole.MEMBER
    assert policy.require_outranks(room, "mod", "stranger") is None
    with pytest.raises(Forbidden, match="ranked below"):
        policy.require_outranks(room, "mod", "owner")
    with pytest.raises(BadRequest):
        policy.require_outranks(room, "mod", "mod")
    with pytest.raises(Forbidden, match="owner or a moderator"):
        policy.require_outranks(room, "member", "quiet")


def test_members_may_post_unless_banned_or_muted() -> None:
    room = _room(banned=frozenset({"member"}))
    assert policy.is_banned(room, "member")
    with pytest.raises(Forbidden, match="banned"):
        policy.require_member(room, "member")
    with pytest.raises(Forbidden, match="join it first"):
        policy.require_member(room, "stranger")
    assert policy.require_member(room, "quiet").user_id == "quiet"
    with pytest.raises(Forbidden, match="muted"):
        policy.require_can_post(room, "quiet")
    assert policy.require_can_post(room, "mod").role is RoomRole.MODERATOR
