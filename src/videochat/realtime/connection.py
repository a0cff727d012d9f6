"""One accepted socket: identity, a bounded send queue and the task that drains it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketState

from videochat.kit.ids import new_id
from videochat.observability import metrics
from videochat.realtime.close_codes import SLOW_CONSUMER


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    room_id: str
    user_id: str
    username: str
    queue_size: int
    id: str = field(default_factory=new_id)
    media: dict[str, bool] = field(
        default_factory=lambda: {"audio": False, "video": False, "screen": False}
    )
    # Message frames up to this id were already sent by the reconnect replay.
    replayed_up_to: int = 0
    closed: bool = False
    _queue: asyncio.Queue[tuple[int, str] | None] = field(init=False)
    _writer: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)

    def offer(self, text: str, *, message_id: int = 0) -> None:
        """Queue a frame without waiting; a full queue means the client cannot keep up."""
        if self.closed:
            return
        try:
            self._queue.put_nowait((message_id, text))
        except asyncio.QueueFull:
            metrics.WS_SLOW_CONSUMERS.inc()
            self.close(SLOW_CONSUMER, "slow consumer: too many frames queued")

    def start_writer(self) -> None:
        """Begin draining the queue to the socket (after any replay was sent)."""
        self._writer = asyncio.create_task(self._drain(), name=f"ws-writer-{self.id}")

    async def send_now(self, text: str) -> None:
        """Send directly, bypassing the queue (used before the writer starts)."""
        await self.websocket.send_text(text)
        metrics.WS_FRAMES_OUT.inc()

    def close(self, code: int, reason: str) -> None:
        """Close the socket soon, from any context; frames still queued are dropped."""
        if self.closed:
            return
        self.closed = True
        asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            if self.websocket.application_state is WebSocketState.CONNECTED:
                await self.websocket.close(code=code, reason=reason)
        metrics.WS_CLOSED.labels(reason=str(code)).inc()

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
            message_id, text = item
            if message_id and message_id <= self.replayed_up_to:
                continue  # already delivered by the replay
            try:
                await self.websocket.send_text(text)
            except Exception:
                self.closed = True
                return
            metrics.WS_FRAMES_OUT.inc()
