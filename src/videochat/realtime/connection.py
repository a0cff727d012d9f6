"""One accepted socket: identity, a bounded send queue and the task that drains it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from videochat.chat.spam import SpamGuard
from videochat.kit.ids import new_id
from videochat.observability import metrics
from videochat.realtime.close_codes import SLOW_CONSUMER
from videochat.realtime.wire import PreparedFrame, send_message


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
    closed: bool = False
    # Muted by a moderator: chat and turning devices on are refused.
    muted: bool = False
    # The client's address, for the per-address connection limit.
    ip: str = ""
    spam: SpamGuard = field(default_factory=SpamGuard)
    # Set when the server decided to close (slow consumer, abuse, shutdown).
    closed_by_server: bool = False
    # The close code the server sent, or the client's when it left (metrics' close reason).
    close_code: int | None = None
    # The task running the socket's handler, cancelled when the server closes it so a
    # handler blocked on receive() from a client that never reads or writes ends too.
    handler: asyncio.Task[Any] | None = None
    _queue: asyncio.Queue[tuple[int, PreparedFrame] | None] = field(init=False)
    _writer: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)

    def offer(self, frame: PreparedFrame | str, *, message_id: int = 0) -> None:
        """Queue a frame without waiting; a full queue means the client cannot keep up.

        A broadcast offers one PreparedFrame to every socket: it is compressed once.
        """
        if self.closed:
            return
        if isinstance(frame, str):
            frame = PreparedFrame(frame)
        try:
            self._queue.put_nowait((message_id, frame))
        except asyncio.QueueFull:
            metrics.WS_SLOW_CONSUMERS.inc()
            self.close(SLOW_CONSUMER, "slow consumer: too many frames queued")

    def start_writer(self) -> None:
        """Begin draining the queue to the socket (after any replay was sent)."""
        self._writer = asyncio.create_task(self._drain(), name=f"ws-writer-{self.id}")

    async def send_now(self, text: str) -> None:
        """Send directly, bypassing the queue (used before the writer starts)."""
        await self.websocket.send(send_message(PreparedFrame(text)))
        if metrics.ENABLED:
            metrics.WS_FRAMES_OUT.inc()

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
        """Stop the drain task (the socket is gone)."""
        self.closed = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer

    async def _drain(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            message_id, frame = item
            if message_id and message_id <= self.replayed_up_to:
                continue  # already delivered by the replay
            try:
                await self.websocket.send(send_message(frame))
            except Exception:
                self.closed = True
                return
            if metrics.ENABLED:
                metrics.WS_FRAMES_OUT.inc()
