"""The socket ``/ws/{room_id}/{user_id}``: transport, handshake and the frame table.

It knows no domain: who may come in (``admit``), what a reconnect missed (``replay``)
and what each frame kind does (a ``FrameRouter``) are given to it by the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from videochat.context import AppContext
from videochat.exceptions import DATABASE_UNAVAILABLE, VideochatError, is_database_outage
from videochat.kit.pagination import MAX_ID
from videochat.observability import metrics
from videochat.realtime import close_codes, lifecycle
from videochat.realtime.connection import Connection
from videochat.realtime.frames import (
    error_frame,
    presence_frame,
    user_joined_frame,
    user_left_frame,
)
from videochat.realtime.handshake import Admit, Admitted, Refused, Replay
from videochat.realtime.hub import dumps
from videochat.realtime.routing import FrameContext, FrameRouter, UnknownFrame
from videochat.security.limiter import Limiter
from videochat.security.ratelimit import client_ip

log = structlog.get_logger(__name__)
_frame_limiter = MovingWindowRateLimiter(MemoryStorage())
# A refused frame's error code, unless the error names its own (``frame_code``).
_CODE_BY_STATUS = {403: "forbidden", 404: "not_found", 503: "unavailable"}


@dataclass(frozen=True, slots=True)
class Ping:
    time: object

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Ping:
        return cls(raw.get("time"))


transport = FrameRouter()


@transport.frame("ping")
async def pong(ctx: FrameContext, frame: Ping) -> None:
    ctx.reply({"type": "pong", "time": frame.time})


class Gateway:
    def __init__(self, *, admit: Admit, replay: Replay, frames: FrameRouter) -> None:
        self._admit, self._replay = admit, replay
        self._frames = FrameRouter()
        self._frames.include_router(transport)
        self._frames.include_router(frames)

    def route(self, path: str = "/ws/{room_id}/{user_id}") -> WebSocketRoute:
        """A plain Starlette route: FastAPI's per-request dependency machinery would
        otherwise live as long as the socket."""
        return WebSocketRoute(path, self.serve, name="chat_socket")

    async def serve(self, websocket: WebSocket) -> None:
        """Join a room's realtime channel (protocol: docs/PROTOCOL.md)."""
        room_id: str = websocket.path_params["room_id"]
        user_id: str = websocket.path_params["user_id"]
        context: AppContext = websocket.app.state.context
        try:
            since = await _check_handshake(context, websocket)
            admitted = await self._admit(context, websocket, room_id, user_id)
        except Refused as exc:
            log.info("ws.refused", room_id=room_id, user_id=user_id, reason=str(exc))
            # Closing before accept makes the server answer the handshake with HTTP 403.
            await websocket.close(code=close_codes.POLICY_VIOLATION, reason=str(exc)[:120])
            return
        await websocket.accept()
        lifecycle.opened(room_id=room_id, user_id=user_id)
        connection = Connection(
            websocket=websocket,
            room_id=room_id,
            user_id=user_id,
            username=admitted.username,
            queue_size=context.settings.realtime.send_queue_size,
            muted=admitted.muted,
            ip=client_ip(websocket.scope),
        )
        connection.handler = asyncio.current_task()
        structlog.contextvars.bind_contextvars(room_id=room_id, user_id=user_id)
        try:
            await self._run(context, connection, admitted, since)
        finally:
            await self._leave(context, connection)

    async def _run(
        self, context: AppContext, connection: Connection, admitted: Admitted, since: int | None
    ) -> None:
        hub, room_id = context.hub, connection.room_id
        # Register first, then replay: live frames queue up meanwhile and the writer
        # skips those the replay already covered, so nothing is lost or repeated.
        await hub.register(connection)
        try:
            if since is not None:
                await self._replay(context, connection, since)
            connection.start_writer()
            connection.offer(dumps(_welcome_frame(context, connection, admitted)))
            joined = user_joined_frame(user_id=connection.user_id, username=connection.username)
            await hub.publish(room_id, joined)
            await hub.publish(room_id, presence_frame(room_id, await hub.participants(room_id)))
            ctx = FrameContext(connection, context, connection.websocket.app.state)
            await self._receive_loop(ctx)
        except WebSocketDisconnect as exc:
            connection.close_code = connection.close_code or exc.code
        except asyncio.CancelledError:
            # The server closed this socket (see Connection.close); anything else propagates.
            task = asyncio.current_task()
            if not connection.closed_by_server or task is None:
                raise
            task.uncancel()

    async def _leave(self, context: AppContext, connection: Connection) -> None:
        hub, room_id, user_id = context.hub, connection.room_id, connection.user_id
        await hub.unregister(connection)
        await connection.stop_writer()
        lifecycle.closed(connection)
        with contextlib.suppress(Exception):
            # One tab of several closing (or a reconnect's old socket) is not leaving.
            if not await hub.is_present(room_id, user_id):
                left = user_left_frame(user_id=user_id, username=connection.username)
                await hub.publish(room_id, left)
            await hub.publish(room_id, presence_frame(room_id, await hub.participants(room_id)))
        structlog.contextvars.unbind_contextvars("room_id", "user_id")

    async def _receive_loop(self, ctx: FrameContext) -> None:
        connection, settings = ctx.connection, ctx.context.settings
        window = settings.rate_limit.ws_frames_window_seconds
        limit = RateLimitItemPerSecond(settings.rate_limit.ws_frames, window)
        burst_limit = RateLimitItemPerSecond(settings.rate_limit.ws_frames * 5, window)
        strikes = 0
        while not connection.closed:
            message = await connection.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            if metrics.ENABLED:
                metrics.WS_FRAMES_IN.inc()
            raw = message.get("text")
            if raw is None:
                ctx.reply(error_frame("bad_frame", "frames must be JSON text"))
                continue
            if len(raw.encode()) > settings.realtime.max_frame_bytes:
                await connection.close_and_wait(close_codes.FRAME_TOO_BIG, "frame too big")
                return
            try:
                frame = json.loads(raw)
            except json.JSONDecodeError:
                frame = None
            kind, route = self._frames.resolve(frame) if isinstance(frame, dict) else (None, None)
            item, bucket = (burst_limit, "burst") if route and route.bursty else (limit, "frames")
            if settings.rate_limit.enabled and not await _frame_limiter.hit(
                item, bucket, connection.id
            ):
                strikes += 1
                if strikes > 10:
                    await connection.close_and_wait(close_codes.RATE_LIMITED, "too many frames")
                    return
                ctx.reply(error_frame("rate_limited", "slow down"))
                continue
            if not isinstance(frame, dict):
                detail = "frames must be JSON" if frame is None else "frames must be objects"
                ctx.reply(error_frame("bad_frame", detail))
                continue
            try:
                if route is None:
                    raise UnknownFrame(kind)
                await route.handle(ctx, frame)
            except VideochatError as exc:
                code = getattr(exc, "frame_code", None)
                code = code or _CODE_BY_STATUS.get(exc.status_code, "invalid")
                ctx.reply(error_frame(code, exc.detail))
            except Exception as exc:
                if not is_database_outage(exc):
                    raise
                # The database is restarting: this frame was not stored (so never
                # acknowledged); the socket stays open and the client may send it again.
                ctx.reply(error_frame("unavailable", DATABASE_UNAVAILABLE))


async def _check_handshake(context: AppContext, websocket: WebSocket) -> int | None:
    """Connection-rate limits and the ``since`` cursor; raises Refused."""
    settings = context.settings
    if settings.rate_limit.enabled:
        ip = client_ip(websocket.scope)
        limiter: Limiter = websocket.app.state.limiter
        if await limiter.retry_after(limiter.ws_connects, "ws-connect", ip) is not None:
            raise Refused("too many connection attempts from this address")
        if context.hub.open_from(ip) >= settings.rate_limit.ws_connections_per_ip:
            raise Refused("too many open connections from this address")
    if "since" not in websocket.query_params:
        return None
    try:
        since = int(websocket.query_params["since"])
    except ValueError as exc:
        raise Refused("since must be a message id") from exc
    if not 0 <= since <= MAX_ID:
        raise Refused("since must be a message id")
    return since


def _welcome_frame(
    context: AppContext, connection: Connection, admitted: Admitted
) -> dict[str, Any]:
    """What a client needs to know about itself before live traffic: role and mute."""
    return {
        "type": "welcome",
        "room_id": connection.room_id,
        "user_id": connection.user_id,
        "connection_id": connection.id,
        "role": admitted.role,
        "muted": connection.muted,
        "max_call_size": context.settings.calls.max_call_size,
    }
