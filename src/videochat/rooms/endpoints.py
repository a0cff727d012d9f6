"""HTTP routes of the rooms domain."""

from __future__ import annotations

from functools import partial
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from videochat.accounts.auth import Actor, CurrentUser, OptionalUser, resolve_actor
from videochat.accounts.repository import USER_CACHE
from videochat.context import Context, Session, SettingsDep
from videochat.db.unit_of_work import after_commit
from videochat.exceptions import Forbidden, Unauthorized
from videochat.kit.cache import invalidate
from videochat.kit.pagination import Offset
from videochat.observability import metrics
from videochat.realtime import close_codes
from videochat.realtime.frames import error_frame
from videochat.rooms import repository, succession
from videochat.rooms import service as rooms
from videochat.rooms.auth import VisibleRoom
from videochat.rooms.moderation import consequences
from videochat.rooms.moderation.service import moderation_frame
from videochat.rooms.schemas import (
    JoinResult,
    MemberOut,
    RoomCreate,
    RoomCursor,
    RoomJoin,
    RoomOut,
)
from videochat.rooms.service import to_out

router = APIRouter(tags=["rooms"])


@router.post("/rooms", response_model=RoomOut)
async def create_room(body: RoomCreate, session: Session, user: Actor) -> RoomOut:
    """Create a room; the caller becomes its owner."""
    if user is None and body.is_private:
        raise Unauthorized("A private room needs an owner: send a bearer token")
    room = await rooms.create(
        session, name=body.name, is_private=body.is_private, owner=user, capacity=body.capacity
    )
    metrics.ROOMS_CREATED.inc()
    return to_out(room, viewer_id=user.id if user else None)


Cursor = Annotated[
    str | None,
    Query(max_length=200, description="where the previous page ended (its X-Next-Cursor)"),
]


def _decode_cursor(cursor: str | None, offset: int) -> RoomCursor | None:
    """The client's cursor, or a 422 in FastAPI's shape saying what is wrong with it."""
    if cursor is None:
        return None
    if offset:
        message = "Use either cursor or offset, not both: the cursor already says where to start"
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "offset"), "msg": message}]
        )
    try:
        return RoomCursor.decode(cursor)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "cursor"), "msg": str(exc)}]
        ) from None


@router.get("/rooms", response_model=list[RoomOut])
async def list_rooms(
    request: Request,
    response: Response,
    session: Session,
    user: OptionalUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> list[RoomOut]:
    """Public rooms and the caller's private rooms, newest first.

    The body stays a plain list (the compatible shape); the next page's address is in
    ``Link: <...>; rel="next"`` (RFC 8288) and its cursor in ``X-Next-Cursor``.
    """
    after = _decode_cursor(cursor, offset)
    viewer_id = user.id if user else None
    found = await rooms.list_visible(
        session,
        viewer_id=viewer_id,
        limit=limit + 1,  # one more than asked: whether a next page exists
        offset=offset,
        before=(after.created_at, after.id) if after else None,
    )
    page = found[:limit]
    if len(found) > limit:
        last = page[-1]
        next_cursor = RoomCursor(created_at=last.created_at, id=last.id).encode()
        query = urlencode({"limit": limit, "cursor": next_cursor})
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
        response.headers["X-Next-Cursor"] = next_cursor
    return [to_out(room, viewer_id=viewer_id) for room in page]


@router.get("/rooms/{room_id}", response_model=RoomOut)
async def get_room(room: VisibleRoom, user: OptionalUser) -> RoomOut:
    """One room; private rooms only for their members."""
    return to_out(room, viewer_id=user.id if user else None)


@router.get("/rooms/{room_id}/members", response_model=list[MemberOut])
async def list_members(room: VisibleRoom, session: Session) -> list[MemberOut]:
    """Members with names and roles."""
    return [
        MemberOut(
            user_id=member.user_id,
            username=username,
            role=member.role,
            joined_at=member.joined_at,
            muted=member.muted,
        )
        for member, username in await repository.list_members(session, room.id)
    ]


@router.post("/rooms/{room_id}/join", response_model=JoinResult)
async def join_room(
    room_id: str,
    session: Session,
    settings: SettingsDep,
    user: OptionalUser,
    body: RoomJoin | None = None,
) -> JoinResult:
    """Join a room (as the token's user; in open mode as the body's ``user_id``)."""
    body = body or RoomJoin()
    actor_id = resolve_actor(settings=settings, token_user=user, claimed_user_id=body.user_id)
    room, member = await rooms.join(
        session, room_id=room_id, user_id=actor_id, invite_code=body.invite_code
    )
    return JoinResult(message=f"User {member.username} joined room {room.name}")


def _announce_heir(
    session: Session, context: Context, handover: succession.Handover, *, by: str
) -> None:
    """Tell the room who owns it now (and that the heir's mute, if any, is lifted)."""
    assert handover.heir is not None
    frames = [moderation_frame("promote", user_id=handover.heir, by=by, role="owner")]
    if handover.heir_was_muted:
        frames.insert(0, moderation_frame("unmute", user_id=handover.heir, by=by))
    control = {"mute": handover.heir, "muted": False}
    for frame in frames:
        after_commit(
            session, partial(context.hub.publish, handover.room_id, frame, control=control)
        )


@router.delete("/users/me", status_code=204, response_class=Response, tags=["accounts"])
async def end_guest(session: Session, user: CurrentUser, context: Context) -> Response:
    """Sign a guest out for good: their rooms pass on, the account and its token end.

    A guest has no password, so a guest who signs out can never come back as the same
    person: see ``rooms.succession`` for what happens to what they owned. Registered
    accounts sign out with ``POST /auth/logout`` instead (403 here).
    """
    if not user.is_guest:
        raise Forbidden("Only a guest account ends when it signs out: use POST /auth/logout")
    room_ids = await succession.rooms_of(session, user.id)
    handovers = {h.room_id: h for h in await succession.hand_over_rooms(session, user.id)}
    for room_id in room_ids:
        # What a kick does to what they were doing there (their live streams end).
        await consequences.apply("kick", session, context, room_id, user.id)
    await session.delete(user)  # memberships, knocks and bans go with it (ON DELETE)
    for room_id in room_ids:
        repository.forget_room_after_commit(session, room_id)
        handover = handovers.get(room_id)
        if handover is not None and handover.heir is not None:
            _announce_heir(session, context, handover, by=user.id)
        # Their other tabs: the socket closes as if its token expired; the fresh token it
        # asks for is refused, and that tab shows the sign-in.
        closing = error_frame("signed_out", "You signed out")
        control = {"disconnect": user.id, "code": close_codes.TOKEN_EXPIRED, "reason": "signed out"}
        after_commit(
            session,
            partial(context.hub.publish, room_id, closing, to_user=user.id, control=control),
        )
    after_commit(session, partial(invalidate, session, USER_CACHE, user.id))
    return Response(status_code=204)
