"""Who may open the room's socket: the credential's user, existing, not banned, seeing it."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocket

from videochat.accounts import repository as users_repository
from videochat.config import AuthMode
from videochat.context import AppContext
from videochat.db.models import CallRecording
from videochat.exceptions import Unauthorized, VideochatError
from videochat.realtime.frames import recording_frame
from videochat.realtime.handshake import Admitted, Rechecked, Refused
from videochat.rooms import policy
from videochat.rooms import repository as rooms_repository
from videochat.rooms import service as rooms
from videochat.rooms.moderation.service import KICKED, removed_reason
from videochat.security.identity import bearer_token
from videochat.security.tickets import read_socket_ticket, spend_socket_ticket
from videochat.security.tokens import TokenClaims, decode_token


async def _authenticate(context: AppContext, websocket: WebSocket, user_id: str) -> TokenClaims:
    """The claims of the socket's credential, if ``user_id``'s; else Refused."""
    # A one-time ``?ticket=`` (the web client), or an access token: ``?token=`` or the
    # Authorization header, for older clients.
    settings = context.settings
    ticket = websocket.query_params.get("ticket")
    token = websocket.query_params.get("token")
    if not ticket and not token:
        with contextlib.suppress(Unauthorized):  # another scheme: no token
            token = bearer_token(websocket.headers.get("authorization"))
    if not ticket and not token:
        raise Refused("missing token")
    try:
        if ticket:
            claims = read_socket_ticket(settings.jwt, ticket)
        else:
            claims = decode_token(settings.jwt, str(token), kind="access")
        if claims.subject != user_id:
            raise Refused("token does not belong to this user")
        if ticket:  # spent only once it is known to be this user's
            await spend_socket_ticket(settings.jwt, context.limiter, claims)
    except VideochatError as exc:
        raise Refused(exc.detail) from exc
    return claims


async def admit(context: AppContext, websocket: WebSocket, room_id: str, user_id: str) -> Admitted:
    """Check token, user and room; make the user a member of a public room."""
    settings = context.settings
    moderation_seen = context.hub.moderation_published  # before the room is read (confirm)
    expires_at = None
    if settings.auth_mode is AuthMode.TOKEN:
        claims = await _authenticate(context, websocket, user_id)
        # A ticket carries the expiry of the access token it was made from.
        expires_at = claims.expires_at
    # Everything below comes from the read cache (the user's profile; the room with its
    # members, roles, mutes and bans), which every write to them invalidates: a member
    # reconnecting costs no query, a newcomer to a public room one insert.
    async with context.sessionmaker() as session:
        user = await users_repository.get_user_view(session, user_id)
        if user is None:
            raise Refused("user not found")
        room = await rooms_repository.get_room_view(session, room_id)
        if room is None or not policy.can_see(room, user_id):
            raise Refused("room not found")
        if policy.is_banned(room, user_id):
            raise Refused("banned from this room")
        joined = room.member(user_id) is None
        try:
            member = await rooms.ensure_member_for_socket(session, room=room, user_id=user_id)
        except VideochatError as exc:  # the room is full (or went away)
            raise Refused(exc.detail) from exc
        return Admitted(
            username=user.username,
            muted=member.muted,
            role=member.role.value,
            expires_at=expires_at,
            recording=await _running_recording(context, session, room_id),
            moderation_seen=moderation_seen,
            joined=joined,
        )


async def confirm(context: AppContext, room_id: str, user_id: str, admitted: Admitted) -> Rechecked:
    """Once the socket is in the hub: a kick, ban or mute that landed since ``admit``
    read the room was published before there was a socket to close or mute (a browser
    scenario on a loaded machine stayed in the call, banned); any later one finds it.

    Read from the database, as the cache may not know yet (~1.1 ms of CPU a socket on
    SQLite), unless nothing can have landed: on the only instance, a member's reconnect
    while no kick, ban or mute was published. Their cache invalidation comes before
    their publish, so one published before admission began was seen by admission.
    Another instance's reach this hub only for rooms it is subscribed to, which a
    socket's room is only from its registration: with several instances, always read.
    """
    hub = context.hub
    quiet = hub.moderation_published == admitted.moderation_seen
    if hub.only_instance and not admitted.joined and quiet:
        return Rechecked()
    async with context.sessionmaker() as session:
        out, muted = await rooms.standing_now(session, room_id=room_id, user_id=user_id)
    if out is not None:
        return Rechecked(close=(KICKED, removed_reason(out)))
    return Rechecked(muted=muted)


async def _running_recording(
    context: AppContext, session: AsyncSession, room_id: str
) -> dict[str, Any] | None:
    """The ``recording`` frame of the call's running recording (a query only when
    this server records calls)."""
    if not context.settings.sfu.recording_enabled:
        return None
    recording = await session.scalar(
        select(CallRecording).where(
            CallRecording.room_id == room_id, CallRecording.stopped_at.is_(None)
        )
    )
    if recording is None:
        return None
    return recording_frame(
        room_id=room_id, active=True, by=recording.started_by, started_at=recording.started_at
    )
