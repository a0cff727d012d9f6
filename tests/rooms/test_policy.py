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


def test_what_standing_allows_each_act() -> None:
    room = _room(banned=frozenset({"member"}))
    assert policy.is_banned(room, "member")
    for act in policy.Act:
        with pytest.raises(Forbidden, match="banned"):
            policy.require_may(room, "member", act)
        with pytest.raises(Forbidden, match="join it first"):
            policy.require_may(room, "stranger", act)  # a private room
        policy.require_may(room, "mod", act)
        policy.require_may(room, None, act)  # open auth mode's anonymous caller
        if act in (policy.Act.WATCH, policy.Act.DELETE_OWN, policy.Act.DELETE_VIDEO):
            policy.require_may(room, "quiet", act)
        else:
            with pytest.raises(policy.Muted):
                policy.require_may(room, "quiet", act)
    public = _room(private=False)
    policy.require_may(public, "stranger", policy.Act.UPLOAD)
    with pytest.raises(Forbidden, match="join it first"):
        policy.require_may(public, "stranger", policy.Act.GO_LIVE)


def test_sockets_ask_the_same_table() -> None:
    policy.refuse_if_muted(True, policy.Act.WATCH)
    policy.refuse_if_muted(False, policy.Act.CHAT)
    for act in (policy.Act.CHAT, policy.Act.TYPE, policy.Act.MEDIA_ON):
        with pytest.raises(policy.Muted):
            policy.refuse_if_muted(True, act)


def test_ranks_for_undoing_and_deleting() -> None:
    room = _room()
    assert policy.may_undo(room, "owner", "mod")
    assert not policy.may_undo(room, "mod", "owner")
    assert policy.may_undo(room, "mod", "mod") and policy.may_undo(room, "mod", None)
    assert policy.may_undo(room, "mod", "gone")  # who did it left the room
    assert policy.may_delete_message(room, "member", "member")
    assert not policy.may_delete_message(room, "member", "quiet")
    assert policy.may_delete_message(room, "mod", "member")
    assert policy.may_delete_message(room, "mod", "gone")
    assert not policy.may_delete_message(room, "mod", "owner")
    assert policy.may_delete_message(room, "owner", "mod")
