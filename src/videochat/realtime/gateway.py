"""The socket ``/ws/{room_id}/{user_id}``: transport, handshake and the frame table.

It knows no domain: who may come in (``admit``), what a reconnect missed (``replay``)
and what each frame kind does (a ``FrameRouter``) are given to it by the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from videochat.context import AppContext, get_context
from videochat.exceptions import DATABASE_UNAVAILABLE, VideochatError, is_database_outage
from videochat.kit.clock import utcnow
from videochat.observability import metrics
from videochat.realtime import close_codes, frames, lifecycle
from videochat.realtime.budget import FrameBudget
from videochat.realtime.connection import Connection
from videochat.realtime.handshake import (
    Admit,
    Admitted,
    Confirm,
    Refused,
    Replay,
    Screened,
    screen,
)
from videochat.realtime.hub import Hub, dumps
from videochat.realtime.routing import FrameContext, FrameRouter, UnknownFrame
from videochat.security.ratelimit import client_ip

log = structlog.get_logger(__name__)
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


def _close_on_expiry(connection: Connection, admitted: Admitted) -> asyncio.TimerHandle | None:
    """Close the socket (4001) when the token that opened it expires: a socket is not
    worth more than the token it came in with; the client reconnects with a fresh one."""
    if admitted.expires_at is None:
        return None
    delay = max(0.0, (admitted.expires_at - utcnow()).total_seconds())
    return asyncio.get_running_loop().call_later(
        delay, connection.close, close_codes.TOKEN_EXPIRED, "token expired"
    )


def _answer(ctx: FrameContext, exc: BaseException) -> bool:
    """Answer a frame that failed with an error frame; False for an unexpected failure."""
    if isinstance(exc, UnknownFrame):
        _malformed(ctx, exc.detail, code=exc.frame_code)
    elif isinstance(exc, VideochatError):
        code = exc.frame_code or _CODE_BY_STATUS.get(exc.status_code, "invalid")
        ctx.reply(frames.error_frame(code, exc.detail))
    elif isinstance(exc, RecursionError):  # parsed, but too deep to handle
        _malformed(ctx, "frame nested too deeply")
    elif is_database_outage(exc):
        # The database is restarting: this frame was not stored (so never acknowledged);
        # the socket stays open and the client may send it again.
        ctx.reply(frames.error_frame("unavailable", DATABASE_UNAVAILABLE))
    else:
        return False
    return True


def _answer_late(ctx: FrameContext, exc: BaseException) -> None:
    """A deferred outcome failed (a message the writer could not store): answered as the
    handler's failure would have been; an unexpected one ends the socket, as it does
    when the handler raises it."""
    if not _answer(ctx, exc):
        log.error("ws.deferred_failed", error=repr(exc)[:300])
        ctx.connection.close(close_codes.INTERNAL_ERROR, "internal error")


def _malformed(ctx: FrameContext, detail: str, *, code: str = "bad_frame") -> None:
    """Answer a frame that is no frame this server knows: protocol v1 (the prototype's)
    had no answer for those, so its clients, which read frames by position, get none."""
    if not ctx.connection.v1:
        ctx.reply(frames.error_frame(code, detail))


async def _announce_leave(hub: Hub, connection: Connection) -> None:
    room_id, user_id = connection.room_id, connection.user_id
    # One tab of several closing (or a reconnect's old socket) is not leaving.
    if not await hub.is_present(room_id, user_id):
        left = frames.user_left_frame(user_id=user_id, username=connection.username)
        await hub.publish(room_id, left)
    await hub.publish_presence(room_id)


class Gateway:
    def __init__(
        self, *, admit: Admit, confirm: Confirm, replay: Replay, handlers: FrameRouter
    ) -> None:
        self._admit, self._confirm, self._replay = admit, confirm, replay
        self._frames = FrameRouter()
        self._frames.include_router(transport)
        self._frames.include_router(handlers)

    def route(self, path: str = "/ws/{room_id}/{user_id}") -> WebSocketRoute:
        """A plain Starlette route: FastAPI's per-request dependency machinery would
        otherwise live as long as the socket."""
        return WebSocketRoute(path, self.serve, name="chat_socket")

    async def serve(self, websocket: WebSocket) -> None:
        """Join a room's realtime channel (protocol: docs/PROTOCOL.md)."""
        room_id: str = websocket.path_params["room_id"]
        user_id: str = websocket.path_params["user_id"]
        context = get_context(websocket)
        try:
            screened = await screen(context, websocket)
        except Refused as exc:
            await self._refuse(websocket, room_id, user_id, exc)
            return
        try:  # the socket holds one of its address's slots from here on
            await self._serve(context, websocket, room_id, user_id, screened)
        finally:
            context.hub.release_address(client_ip(websocket.scope))

    async def _refuse(self, websocket: WebSocket, room_id: str, user_id: str, exc: Refused) -> None:
        log.info("ws.refused", room_id=room_id, user_id=user_id, reason=str(exc))
        # Closing before accept makes the server answer the handshake with HTTP 403.
        await websocket.close(code=close_codes.POLICY_VIOLATION, reason=str(exc)[:120])

    async def _serve(
        self,
        context: AppContext,
        websocket: WebSocket,
        room_id: str,
        user_id: str,
        screened: Screened,
    ) -> None:
        try:
            admitted = await self._admit(context, websocket, room_id, user_id)
        except Refused as exc:
            await self._refuse(websocket, room_id, user_id, exc)
            return
        # Counted per account, not only per address: many people share an address (an
        # office's NAT), while one person's sockets are their tabs and devices.
        limits = context.settings.rate_limit
        per_account = limits.ws_connections_per_user if limits.enabled else None
        if not context.hub.claim_account(user_id, per_account):
            refused = Refused("too many open connections for this account")
            await self._refuse(websocket, room_id, user_id, refused)
            return
        try:  # the socket holds one of its account's slots from here on
            await self._open(context, websocket, room_id, user_id, screened, admitted)
        finally:
            context.hub.release_account(user_id)

    async def _open(
        self,
        context: AppContext,
        websocket: WebSocket,
        room_id: str,
        user_id: str,
        screened: Screened,
        admitted: Admitted,
    ) -> None:
        await websocket.accept()
        lifecycle.opened(room_id=room_id, user_id=user_id)
        connection = Connection(
            websocket=websocket,
            room_id=room_id,
            user_id=user_id,
            username=admitted.username,
            queue_size=context.settings.realtime.send_queue_size,
            muted=admitted.muted,
            v1=screened.version == 1,
        )
        connection.handler = asyncio.current_task()
        structlog.contextvars.bind_contextvars(room_id=room_id, user_id=user_id)
        expiry = _close_on_expiry(connection, admitted)
        try:
            await self._run(context, connection, admitted, screened.since)
        finally:
            if expiry is not None:
                expiry.cancel()
            await self._leave(context, connection)

    async def _run(
        self, context: AppContext, connection: Connection, admitted: Admitted, since: int | None
    ) -> None:
        hub, room_id = context.hub, connection.room_id
        # Register first, then replay: live frames queue up meanwhile and the writer
        # skips those the replay already covered, so nothing is lost or repeated.
        await hub.register(connection)
        try:
            try:
                rechecked = await self._confirm(context, room_id, connection.user_id, admitted)
                if since is not None and rechecked.close is None:
                    await self._replay(context, connection, since)
            except Exception as exc:
                if not is_database_outage(exc):
                    raise
                # Accepted, but its second look or its replay could not be read: the
                # client reconnects (with ?since=) once the database is back.
                log.warning("ws.opening_unavailable", error=repr(exc)[:200])
                await connection.close_and_wait(close_codes.TRY_AGAIN_LATER, "database unavailable")
                return
            if rechecked.close is not None:
                await connection.close_and_wait(*rechecked.close)
                return
            if rechecked.muted is not None:
                connection.muted = rechecked.muted
            connection.start_writer()
            if not connection.v1:  # the prototype's clients expect user_joined first
                welcome = frames.welcome_frame(
                    connection,
                    role=admitted.role,
                    max_call_size=context.settings.calls.max_call_size,
                    recording=admitted.recording,
                )
                metrics.frames_sent(connection.offer(dumps(welcome)))
            joined = frames.user_joined_frame(
                user_id=connection.user_id, username=connection.username
            )
            await hub.publish(room_id, joined)
            await hub.publish_presence(room_id)
            ctx = FrameContext(connection, context)
            ctx.on_late_error = partial(_answer_late, ctx)
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
        # Before any await: a server-side close (a kick) interrupts the handler once the
        # client has answered its close frame, and by then the handler has heard that
        # answer and is here. Cut off, it ended in CancelledError (an ASGI error in the
        # log) with the presence and subscription clean-up half done.
        connection.handler = None
        hub = context.hub
        await hub.unregister(connection)
        await connection.stop_writer()
        lifecycle.closed(connection)
        with contextlib.suppress(Exception):
            # Shielded: a server shutting down cancels every handler; the room must
            # still be told.
            await asyncio.shield(_announce_leave(hub, connection))
        structlog.contextvars.unbind_contextvars("room_id", "user_id")

    async def _receive_loop(self, ctx: FrameContext) -> None:
        connection, settings = ctx.connection, ctx.context.settings
        budget = FrameBudget(settings)
        strikes = 0
        while not connection.closed:
            message = await connection.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            if metrics.ENABLED:
                metrics.WS_FRAMES_IN.inc()
            raw = message.get("text")
            if raw is None:
                _malformed(ctx, "frames must be JSON text")
                continue
            # (Encoded only when it might be too big: UTF-8 is at most 4 bytes a character.)
            limit = settings.realtime.max_frame_bytes
            if len(raw) > limit // 4 and len(raw.encode()) > limit:
                await connection.close_and_wait(close_codes.FRAME_TOO_BIG, "frame too big")
                return
            try:
                frame = json.loads(raw)
            except (json.JSONDecodeError, RecursionError):  # not JSON, or nested too deep
                frame = None
            route = self._frames.route_of(frame) if isinstance(frame, dict) else None
            if not budget.spend(bursty=route is not None and route.bursty):
                strikes += 1
                if strikes > 10:
                    await connection.close_and_wait(close_codes.RATE_LIMITED, "too many frames")
                    return
                ctx.reply(frames.error_frame("rate_limited", "slow down"))
                continue
            if not isinstance(frame, dict):
                _malformed(
                    ctx, "frames must be JSON" if frame is None else "frames must be objects"
                )
                continue
            try:
                if route is None:
                    raise UnknownFrame(self._frames.kind_of(frame))
                await route.handler(ctx, route.parse(frame))
            except Exception as exc:
                if not _answer(ctx, exc):
                    raise
