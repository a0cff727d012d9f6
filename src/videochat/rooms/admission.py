"""Who may open the room's socket: the token's user, existing, not banned, able to see it."""

from __future__ import annotations

import contextlib

from starlette.websockets import WebSocket

from videochat.accounts import repository as users_repository
from videochat.config import AuthMode
from videochat.context import AppContext
from videochat.exceptions import Unauthorized, VideochatError
from videochat.realtime.handshake import Admitted, Refused
from videochat.rooms import policy
from videochat.rooms import repository as rooms_repository
from videochat.rooms.service import rooms
from videochat.security.identity import bearer_token
from videochat.security.tokens import decode_token


async def admit(context: AppContext, websocket: WebSocket, room_id: str, user_id: str) -> Admitted:
    """Check token, user and room; make the user a member of a public room."""
    settings = context.settings
    expires_at = None
    if settings.auth_mode is AuthMode.TOKEN:
        token = websocket.query_params.get("token")
        if not token:
            with contextlib.suppress(Unauthorized):  # another scheme: no token
                token = bearer_token(websocket.headers.get("authorization"))
        if not token:
            raise Refused("missing token")
        try:
            claims = decode_token(settings.jwt, token, kind="access")
        except VideochatError as exc:
            raise Refused(exc.detail) from exc
        if claims.subject != user_id:
            raise Refused("token does not belong to this user")
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
        try:
            member = await rooms.ensure_member_for_socket(session, room=room, user_id=user_id)
        except VideochatError as exc:  # the room is full (or went away)
            raise Refused(exc.detail) from exc
        return Admitted(
            username=user.username,
            muted=member.muted,
            role=member.role.value,
            expires_at=expires_at,
        )
