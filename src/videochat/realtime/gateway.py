"""The chat socket ``/ws/{room_id}/{user_id}``: handshake checks, replay, frame handling."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.routing import WebSocketRoute

from videochat.accounts import repository as users_repository
from videochat.chat import repository as chat_repository
from videochat.chat.reactions import clean_emoji, reactions, summarise
from videochat.chat.service import chat, clean_content
from videochat.chat.spam import SpamError
from videochat.chat.writer import MessageWriter
from videochat.config import AuthMode
from videochat.context import AppContext, get_context
from videochat.exceptions import (
    DATABASE_UNAVAILABLE,
    BadRequest,
    Unauthorized,
    VideochatError,
    is_database_outage,
)
from videochat.kit.pagination import MAX_ID
from videochat.observability import metrics, sockets
from videochat.realtime import close_codes, frames
from videochat.realtime.connection import Connection
from videochat.realtime.hub import dumps
from videochat.rooms import policy
from videochat.rooms import repository as rooms_repository
from videochat.rooms.service import rooms
from videochat.security.identity import bearer_token
from videochat.security.ratelimit import Limiter, client_ip
from videochat.security.tokens import decode_token

router = APIRouter()
log = structlog.get_logger(__name__)

_frame_limiter = MovingWindowRateLimiter(MemoryStorage())


@dataclass(frozen=True, slots=True)
class Admitted:
    """What the handshake learned about the user, kept for the connection."""

    username: str
    since: int | None
    muted: bool
    role: str | None


class Refused(Exception):
    """The handshake is refused (HTTP 403 before accept)."""


async def _authorise(
    context: AppContext, websocket: WebSocket, room_id: str, user_id: str
) -> Admitted:
    """Check token, user and room; make the user a member of a public room."""
    settings = context.settings
    if settings.rate_limit.enabled:
        ip = client_ip(websocket.scope)
        limiter: Limiter = context.limiter
        if await limiter.retry_after(limiter.ws_connects, "ws-connect", ip) is not None:
            raise Refused("too many connection attempts from this address")
        if context.hub.open_from(ip) >= settings.rate_limit.ws_connections_per_ip:
            raise Refused("too many open connections from this address")
    params = websocket.query_params
    since: int | None = None
    if "since" in params:
        try:
            since = int(params["since"])
        except ValueError as exc:
            raise Refused("since must be a message id") from exc
        if not 0 <= since <= MAX_ID:
            raise Refused("since must be a message id")
    if settings.auth_mode is AuthMode.TOKEN:
        token = params.get("token")
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
            username=user.username, since=since, muted=member.muted, role=member.role.value
        )


async def chat_socket(websocket: WebSocket) -> None:
    """Join a room's realtime channel (protocol: docs/PROTOCOL.md)."""
    room_id: str = websocket.path_params["room_id"]
    user_id: str = websocket.path_params["user_id"]
    context: AppContext = get_context(websocket)
    try:
        admitted = await _authorise(context, websocket, room_id, user_id)
        username, since = admitted.username, admitted.since
    except Refused as exc:
        log.info("ws.refused", room_id=room_id, user_id=user_id, reason=str(exc))
        # Closing before accept makes the server answer the handshake with HTTP 403.
        await websocket.close(code=close_codes.POLICY_VIOLATION, reason=str(exc)[:120])
        return

    await websocket.accept()
    sockets.opened(room_id=room_id, user_id=user_id)
    connection = Connection(
        websocket=websocket,
        room_id=room_id,
        user_id=user_id,
        username=username,
        queue_size=context.settings.realtime.send_queue_size,
        muted=admitted.muted,
        ip=client_ip(websocket.scope),
    )
    connection.handler = asyncio.current_task()
    hub = context.hub
    structlog.contextvars.bind_contextvars(room_id=room_id, user_id=user_id)
    # Register first, then replay: live frames queue up meanwhile and the writer
    # skips those the replay already covered, so nothing is lost or repeated.
    await hub.register(connection)
    try:
        if since is not None:
            async with context.sessionmaker() as session:
                missed = await chat.missed(session, room_id=room_id, since=since)
                on = await chat_repository.reactions_of(session, [m.id for m in missed])
            for message in missed:
                reacted = summarise(on[message.id])
                await connection.send_now(dumps(frames.message_frame(message, reacted)))
                connection.replayed_up_to = message.id
        connection.start_writer()
        connection.offer(dumps(_welcome_frame(context, connection, role=admitted.role)))
        await hub.publish(room_id, frames.user_joined_frame(user_id=user_id, username=username))
        await hub.publish(room_id, frames.presence_frame(room_id, await hub.participants(room_id)))
        await _receive_loop(context, connection)
    except WebSocketDisconnect as exc:
        connection.close_code = connection.close_code or exc.code
    except asyncio.CancelledError:
        # The server closed this socket (see Connection.close); anything else propagates.
        task = asyncio.current_task()
        if not connection.closed_by_server or task is None:
            raise
        task.uncancel()
    finally:
        await hub.unregister(connection)
        await connection.stop_writer()
        sockets.closed(connection)
        with contextlib.suppress(Exception):
            # One tab of several closing (or a reconnect's old socket) is not leaving.
            if not await hub.is_present(room_id, user_id):
                await hub.publish(
                    room_id, frames.user_left_frame(user_id=user_id, username=username)
                )
            await hub.publish(
                room_id, frames.presence_frame(room_id, await hub.participants(room_id))
            )
        structlog.contextvars.unbind_contextvars("room_id", "user_id")


# A plain Starlette route: the socket needs none of FastAPI's dependency machinery,
# whose per-request exit stacks and frames would otherwise live as long as the socket.
router.routes.append(WebSocketRoute("/ws/{room_id}/{user_id}", chat_socket, name="chat_socket"))


def _welcome_frame(
    context: AppContext, connection: Connection, *, role: str | None
) -> dict[str, Any]:
    """What a client needs to know about itself before live traffic: role and mute."""
    return {
        "type": "welcome",
        "room_id": connection.room_id,
        "user_id": connection.user_id,
        "connection_id": connection.id,
        "role": role,
        "muted": connection.muted,
        "max_call_size": context.settings.calls.max_call_size,
    }


async def _receive_loop(context: AppContext, connection: Connection) -> None:
    settings = context.settings
    limit = RateLimitItemPerSecond(
        settings.rate_limit.ws_frames, settings.rate_limit.ws_frames_window_seconds
    )
    signal_limit = RateLimitItemPerSecond(
        settings.rate_limit.ws_frames * 5, settings.rate_limit.ws_frames_window_seconds
    )
    strikes = 0
    while not connection.closed:
        message = await connection.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if metrics.ENABLED:
            metrics.WS_FRAMES_IN.inc()
        raw = message.get("text")
        if raw is None:
            connection.offer(dumps(frames.error_frame("bad_frame", "frames must be JSON text")))
            continue
        if len(raw.encode()) > settings.realtime.max_frame_bytes:
            await connection.close_and_wait(close_codes.FRAME_TOO_BIG, "frame too big")
            return
        try:
            frame = json.loads(raw)
        except json.JSONDecodeError:
            frame = None
        # WebRTC signalling comes in bursts (offers, answers, ICE candidates while a
        # call of six starts): it has its own, larger budget.
        is_signal = isinstance(frame, dict) and frame.get("type") == "signal"
        item, bucket = (signal_limit, "signal") if is_signal else (limit, "frames")
        if settings.rate_limit.enabled and not await _frame_limiter.hit(
            item, bucket, connection.id
        ):
            strikes += 1
            if strikes > 10:
                await connection.close_and_wait(close_codes.RATE_LIMITED, "too many frames")
                return
            connection.offer(dumps(frames.error_frame("rate_limited", "slow down")))
            continue
        if not isinstance(frame, dict):
            detail = "frames must be JSON" if frame is None else "frames must be objects"
            connection.offer(dumps(frames.error_frame("bad_frame", detail)))
            continue
        try:
            await _handle(context, connection, frame)
        except VideochatError as exc:
            code = (
                "spam"
                if isinstance(exc, SpamError)
                else {403: "forbidden", 404: "not_found", 503: "unavailable"}.get(
                    exc.status_code, "invalid"
                )
            )
            connection.offer(dumps(frames.error_frame(code, exc.detail)))
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            # The database is restarting: this frame was not stored (so never
            # acknowledged); the socket stays open and the client may send it again.
            connection.offer(dumps(frames.error_frame("unavailable", DATABASE_UNAVAILABLE)))


async def _handle(context: AppContext, connection: Connection, frame: dict[str, Any]) -> None:
    hub = context.hub
    kind = frame.get("type", "message" if "content" in frame else None)
    if connection.muted and (
        kind in {"message", "edit", "reaction"}
        or (
            kind == "media_state"
            and any(frame.get(k) is True for k in ("audio", "video", "screen"))
        )
    ):
        connection.offer(dumps(frames.error_frame("muted", "a moderator has muted you here")))
        return
    if kind == "message":
        content = clean_content(
            frame.get("content"), max_chars=context.settings.realtime.max_message_chars
        )
        if context.settings.rate_limit.enabled:
            connection.spam.check(content)
        # Stored (committed) and broadcast in the room's id order; see chat/writer.py.
        writer: MessageWriter = context.chat_writer
        await writer.post(
            room_id=connection.room_id,
            user_id=connection.user_id,
            username=connection.username,
            content=content,
        )
    elif kind in {"edit", "delete"}:
        await _edit_or_delete(context, connection, frame, kind)
    elif kind == "reaction":
        await _react(context, connection, frame)
    elif kind == "typing":
        await hub.publish(
            connection.room_id,
            {
                "type": "typing",
                "user_id": connection.user_id,
                "username": connection.username,
                "typing": bool(frame.get("typing", True)),
            },
            except_connection=connection.id,
        )
    elif kind == "signal":
        await _relay_signal(context, connection, frame)
    elif kind == "media_state":
        for media_kind in ("audio", "video", "screen"):
            if isinstance(frame.get(media_kind), bool):
                connection.media[media_kind] = frame[media_kind]
        await hub.media_changed(connection)
        await hub.publish(
            connection.room_id,
            {"type": "media_state", "user_id": connection.user_id, **connection.media},
        )
        await hub.publish(
            connection.room_id,
            frames.presence_frame(connection.room_id, await hub.participants(connection.room_id)),
        )
    elif kind == "ping":
        connection.offer(dumps({"type": "pong", "time": frame.get("time")}))
    else:
        connection.offer(dumps(frames.error_frame("unknown_type", f"unknown frame type {kind!r}")))


async def _edit_or_delete(
    context: AppContext, connection: Connection, frame: dict[str, Any], kind: str
) -> None:
    message_id = _message_id(frame, kind)
    async with context.sessionmaker() as session:
        if kind == "edit":
            content = clean_content(
                frame.get("content"), max_chars=context.settings.realtime.max_message_chars
            )
            edited = await chat.edit(
                session,
                room_id=connection.room_id,
                message_id=message_id,
                actor_id=connection.user_id,
                content=content,
            )
            out = frames.message_edited_frame(edited)
        else:
            # The sender's role (may a moderator delete it?) from the read cache.
            room_view = await rooms_repository.get_room_view(session, connection.room_id)
            role = policy.role_of(room_view, connection.user_id) if room_view else None
            deleted = await chat.delete(
                session,
                room_id=connection.room_id,
                message_id=message_id,
                actor_id=connection.user_id,
                actor_role=role,
            )
            out = frames.message_deleted_frame(deleted, deleted_by=connection.user_id)
    await context.hub.publish(connection.room_id, out)


def _message_id(frame: dict[str, Any], kind: str) -> int:
    message_id = frame.get("id")
    if (
        not isinstance(message_id, int)
        or isinstance(message_id, bool)
        or not 1 <= message_id <= MAX_ID
    ):
        raise BadRequest(f"{kind} needs the message 'id'")
    return message_id


async def _react(context: AppContext, connection: Connection, frame: dict[str, Any]) -> None:
    message_id = _message_id(frame, "reaction")
    emoji = clean_emoji(frame.get("emoji"))
    add = frame.get("add", True)
    if not isinstance(add, bool):
        raise BadRequest("add must be true or false")
    async with context.sessionmaker() as session:
        now = await reactions.set(
            session,
            room_id=connection.room_id,
            message_id=message_id,
            user_id=connection.user_id,
            emoji=emoji,
            add=add,
        )
    await context.hub.publish(
        connection.room_id,
        frames.reaction_frame(
            message_id=message_id,
            user_id=connection.user_id,
            username=connection.username,
            emoji=emoji,
            added=add,
            reactions=now,
        ),
    )


async def _relay_signal(context: AppContext, connection: Connection, frame: dict[str, Any]) -> None:
    """Relay WebRTC signalling to one connection of a named peer in the same room.

    A user may have several sockets in a room (tabs, a reconnect the server has not
    noticed yet); only the latest is in the call. ``to_connection`` names the socket
    (it must be one of that user's in this room); without it the signal goes to the
    user's latest socket. Never to all of them: two tabs answering one offer would
    break the negotiation.
    """
    target = frame.get("to")
    target_connection = frame.get("to_connection")
    data = frame.get("data")
    if (
        not isinstance(target, str)
        or not isinstance(data, dict)
        or not (target_connection is None or isinstance(target_connection, str))
    ):
        connection.offer(
            dumps(
                frames.error_frame(
                    "bad_signal",
                    "signal needs 'to' (a user id), 'data' and optionally 'to_connection'",
                )
            )
        )
        return
    connections = (
        []
        if target == connection.user_id
        else await context.hub.connections_of(connection.room_id, target)
    )
    if target_connection is None and connections:
        target_connection = connections[-1]
    if target_connection not in connections:
        connection.offer(
            dumps(frames.error_frame("peer_not_found", "that peer is not in the room"))
        )
        return
    await context.hub.publish(
        connection.room_id,
        {
            "type": "signal",
            "from": connection.user_id,
            "from_connection": connection.id,
            "to": target,
            "to_connection": target_connection,
            "data": data,
        },
        to_user=target,
        to_connection=target_connection,
    )


async def drain_tasks() -> None:
    """Yield once so queued close tasks run (used at shutdown)."""
    await asyncio.sleep(0)
