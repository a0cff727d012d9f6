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

from videochat.accounts import repository as users_repository
from videochat.accounts.tokens import decode_token
from videochat.chat.service import chat, clean_content
from videochat.chat.spam import SpamError
from videochat.config import AuthMode
from videochat.context import AppContext
from videochat.exceptions import (
    DATABASE_UNAVAILABLE,
    BadRequest,
    VideochatError,
    is_database_outage,
)
from videochat.kit.pagination import MAX_ID
from videochat.observability import metrics, sockets
from videochat.realtime import close_codes, frames
from videochat.realtime.connection import Connection
from videochat.realtime.hub import dumps
from videochat.rooms import repository as rooms_repository
from videochat.rooms.moderation import is_banned
from videochat.rooms.service import can_see, role_of, rooms
from videochat.security.limiter import Limiter
from videochat.security.ratelimit import client_ip

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
        limiter: Limiter = websocket.app.state.limiter
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
            header = websocket.headers.get("authorization", "")
            token = header[7:].strip() if header.lower().startswith("bearer ") else None
        if not token:
            raise Refused("missing token")
        try:
            claims = decode_token(settings.jwt, token, kind="access")
        except VideochatError as exc:
            raise Refused(exc.detail) from exc
        if claims.subject != user_id:
            raise Refused("token does not belong to this user")
    async with context.sessionmaker() as session:
        user = await users_repository.get_user(session, user_id)
        if user is None:
            raise Refused("user not found")
        room = await rooms_repository.get_room(session, room_id)
        if room is None or not can_see(room, user_id):
            raise Refused("room not found")
        if await is_banned(session, room_id, user_id):
            raise Refused("banned from this room")
        try:
            await rooms.ensure_member_for_socket(session, room=room, user_id=user_id)
        except VideochatError as exc:  # the room is full
            raise Refused(exc.detail) from exc
        membership = await rooms_repository.get_membership(session, room_id, user_id)
        return Admitted(
            username=user.username,
            since=since,
            muted=bool(membership and membership.muted),
            role=membership.role.value if membership else None,
        )


@router.websocket("/ws/{room_id}/{user_id}")
async def chat_socket(websocket: WebSocket, room_id: str, user_id: str) -> None:
    """Join a room's realtime channel (protocol: docs/PROTOCOL.md)."""
    context: AppContext = websocket.app.state.context
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
            for message in missed:
                await connection.send_now(dumps(frames.message_frame(message)))
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
            await hub.publish(room_id, frames.user_left_frame(user_id=user_id, username=username))
            await hub.publish(
                room_id, frames.presence_frame(room_id, await hub.participants(room_id))
            )
        structlog.contextvars.unbind_contextvars("room_id", "user_id")


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
                else {403: "forbidden", 404: "not_found"}.get(exc.status_code, "invalid")
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
        kind in {"message", "edit"}
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
        # One message of a room at a time, so sockets receive a room's messages in
        # the order of their ids (the history's order); see realtime/ordering.py.
        async with context.hub.order.writing(connection.room_id) as session:
            stored = await chat.post(
                session,
                room_id=connection.room_id,
                user_id=connection.user_id,
                username=connection.username,
                content=content,
            )
            # Stored and committed before anyone sees it: what was seen survives a restart.
            await hub.publish(connection.room_id, frames.message_frame(stored))
        metrics.CHAT_MESSAGES.inc()
    elif kind in {"edit", "delete"}:
        await _edit_or_delete(context, connection, frame, kind)
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
    message_id = frame.get("id")
    if (
        not isinstance(message_id, int)
        or isinstance(message_id, bool)
        or not 1 <= message_id <= MAX_ID
    ):
        raise BadRequest(f"{kind} needs the message 'id'")
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
            room = await rooms_repository.get_room(session, connection.room_id)
            role = role_of(room, connection.user_id) if room else None
            deleted = await chat.delete(
                session,
                room_id=connection.room_id,
                message_id=message_id,
                actor_id=connection.user_id,
                actor_role=role,
            )
            out = frames.message_deleted_frame(deleted, deleted_by=connection.user_id)
    await context.hub.publish(connection.room_id, out)


async def _relay_signal(context: AppContext, connection: Connection, frame: dict[str, Any]) -> None:
    """Relay WebRTC signalling to one named peer in the same room, and no one else."""
    target = frame.get("to")
    data = frame.get("data")
    if not isinstance(target, str) or not isinstance(data, dict):
        connection.offer(
            dumps(frames.error_frame("bad_signal", "signal needs 'to' (a user id) and 'data'"))
        )
        return
    if target == connection.user_id or not await context.hub.is_present(connection.room_id, target):
        connection.offer(
            dumps(frames.error_frame("peer_not_found", "that peer is not in the room"))
        )
        return
    await context.hub.publish(
        connection.room_id,
        {"type": "signal", "from": connection.user_id, "to": target, "data": data},
        to_user=target,
    )


async def drain_tasks() -> None:
    """Yield once so queued close tasks run (used at shutdown)."""
    await asyncio.sleep(0)
