"""One accepted socket: identity, and the way frames reach it.

A frame is written straight to the socket's transport when it has room
(``WireProtocol.send_nowait``): a broadcast costs no task switch per recipient, and an
idle socket holds neither a queue nor a task. A socket that cannot take more right now
(the kernel's buffer and the transport's are full) gets a bounded backlog and a task
that drains it; a backlog over ``queue_size`` frames means a slow consumer, closed with
its documented code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from videochat.kit.ids import new_id
from videochat.observability import metrics
from videochat.realtime.close_codes import SLOW_CONSUMER
from videochat.realtime.wire import WIRE_EXTENSION, PreparedFrame, send_message


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    room_id: str
    user_id: str
    username: str
    queue_size: int
    id: str = field(default_factory=new_id)
    # Wall-clock time of the connection, which orders the participant list everywhere.
    connected_at: float = field(default_factory=time.time)
    media: dict[str, bool] = field(
        default_factory=lambda: {"audio": False, "video": False, "screen": False}
    )
    # Message frames up to this id were already sent by the reconnect replay.
    replayed_up_to: int = 0
    # ... and up to this id by the catch-up after a broker outage (live copies are skipped).
    caught_up_to: int = 0
    # The room's count of delivered messages when this socket joined (realtime.delivered):
    # it was given every message the room was delivered after that.
    joined: int = 0
    # Set while the broker is away: the catch-up on its return sends what came after.
    catch_up_after: int | None = None
    closed: bool = False
    # Muted by a moderator: chat and turning devices on are refused.
    muted: bool = False
    # Speaks protocol v1 (the prototype's, no ``?v=2`` asked): the hub gives it only the
    # prototype's frames (see ``hub.PROTOTYPE_FRAMES``).
    v1: bool = False
    # Set when the server decided to close (slow consumer, abuse, shutdown).
    closed_by_server: bool = False
    # The close code the server sent, or the client's when it left (metrics' close reason).
    close_code: int | None = None
    # The task running the socket's handler, cancelled when the server closes it so a
    # handler blocked on receive() from a client that never reads or writes ends too;
    # None once the handler is leaving (its clean-up is never cut off).
    handler: asyncio.Task[Any] | None = None
    # Frames waiting for the socket (before the replay ends, or while it is full).
    _backlog: deque[tuple[int, PreparedFrame]] | None = field(init=False, default=None)
    _writer: asyncio.Task[None] | None = field(init=False, default=None)
    # False until the replay is over: frames wait in the backlog until then.
    _live: bool = field(init=False, default=False)
    _send_nowait: Callable[[PreparedFrame], bool] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        wire = self.websocket.scope.get("extensions", {}).get(WIRE_EXTENSION)
        if wire is not None:
            self._send_nowait = wire["send_nowait"]

    def offer(
        self, frame: PreparedFrame | str, message_id: int = 0, droppable: bool = False
    ) -> bool:
        """Send a frame without waiting: now if the socket has room, else through the backlog.

        True when it was written now: the caller counts those (a broadcast counts its
        sends once, not per socket); the backlog's writer counts the rest.
        A broadcast offers one PreparedFrame to every socket: it is compressed once.
        A ``droppable`` frame (another member's signalling) is dropped once the backlog
        is half full, so only the server's own traffic can make a slow consumer.
        """
        if self.closed or (message_id and message_id <= self.caught_up_to):
            return False  # (the catch-up gave it already)
        if isinstance(frame, str):
            frame = PreparedFrame(frame)
        if self._live and self._writer is None and not self._backlog:
            if message_id and message_id <= self.replayed_up_to:
                return False  # already delivered by the replay
            send_nowait = self._send_nowait
            if send_nowait is not None:
                try:
                    if send_nowait(frame):
                        return True
                except Exception:  # the socket went away: its handler cleans up
                    self.closed = True
                    return False
        if self._backlog is None:
            self._backlog = deque()
        if droppable and len(self._backlog) >= self.queue_size // 2:
            return False
        if len(self._backlog) >= self.queue_size:
            metrics.WS_SLOW_CONSUMERS.inc()
            self.close(SLOW_CONSUMER, "slow consumer: too many frames queued")
            return False
        self._backlog.append((message_id, frame))
        if self._live and self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name=f"ws-writer-{self.id}")
        return False

    @property
    def waiting(self) -> int:
        """Frames in the backlog: the socket is full, or its replay is not over."""
        return len(self._backlog) if self._backlog else 0

    def start_writer(self) -> None:
        """Begin sending live frames (after any replay was sent), the backlog first."""
        self._live = True
        if self._backlog and self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name=f"ws-writer-{self.id}")

    async def send_now(self, text: str) -> None:
        """Send directly, bypassing the backlog (the replay, before start_writer)."""
        await self.websocket.send(send_message(PreparedFrame(text)))
        metrics.frames_sent(1)

    def close(self, code: int, reason: str) -> None:
        """Close the socket soon, from any context; frames still queued are dropped."""
        if self.closed:
            return
        self.closed = True
        self.closed_by_server = True
        self.close_code = code
        asyncio.get_running_loop().create_task(self._close(code, reason))

    async def close_and_wait(self, code: int, reason: str) -> None:
        """Close from the socket's own handler, waiting until the close frame is sent."""
        if self.closed:
            return
        self.closed = True
        self.closed_by_server = True
        self.close_code = code
        await self._close(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        # A writer stuck on a full TCP buffer would hold the socket: stop it first.
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        with contextlib.suppress(Exception):
            if self.websocket.application_state is WebSocketState.CONNECTED:
                await asyncio.wait_for(self.websocket.close(code=code, reason=reason), 2)
        current = asyncio.current_task()
        if self.handler is not None and not self.handler.done() and self.handler is not current:
            self.handler.cancel()

    async def stop_writer(self) -> None:
        """Stop sending (the socket is gone)."""
        self.closed = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer

    async def _drain(self) -> None:
        backlog = self._backlog
        assert backlog is not None
        try:
            while backlog and not self.closed:
                message_id, frame = backlog.popleft()
                if message_id and message_id <= self.replayed_up_to:
                    continue  # already delivered by the replay
                # Waits while the transport is full (uvicorn's flow control).
                await self.websocket.send(send_message(frame))
                metrics.frames_sent(1)
        except Exception:
            self.closed = True
        finally:
            self._writer = None
