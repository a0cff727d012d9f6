"""Socket lifecycle: the opened / closed-by-reason metrics and the connect / disconnect logs."""

from __future__ import annotations

import asyncio
import sys
import time

import structlog

from videochat.observability import metrics
from videochat.realtime import close_codes
from videochat.realtime.connection import Connection

log = structlog.get_logger("videochat.ws")

_BY_CODE = {
    close_codes.SLOW_CONSUMER: "slow_consumer",
    close_codes.RATE_LIMITED: "rate_limited",
    close_codes.FRAME_TOO_BIG: "too_big",
    close_codes.INTERNAL_ERROR: "error",
    # "Service restart": uvicorn closes open sockets with it when it stops.
    1012: "server_shutdown",
}


def close_reason(code: int | None, *, by_server: bool, error: BaseException | None) -> str:
    """The ``reason`` label of a closed socket."""
    if isinstance(error, asyncio.CancelledError):
        # Cancelled without the server closing it first: uvicorn is shutting down.
        return "server_shutdown"
    if error is not None:
        return "error"
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code == close_codes.GOING_AWAY and by_server:
        return "server_shutdown"
    return "normal"


def opened(*, room_id: str, user_id: str) -> None:
    """Count and log an accepted socket."""
    metrics.WS_OPENED.inc()
    log.info("ws.connected", room_id=room_id, user_id=user_id)


def closed(connection: Connection) -> None:
    """Count and log a socket's end; call it from the handler's ``finally``."""
    # Inside a ``finally`` this is the exception on its way out, if any.
    error = sys.exc_info()[1]
    reason = close_reason(connection.close_code, by_server=connection.closed_by_server, error=error)
    metrics.WS_CLOSED.labels(reason=reason).inc()
    log.info(
        "ws.disconnected",
        room_id=connection.room_id,
        user_id=connection.user_id,
        reason=reason,
        code=int(connection.close_code) if connection.close_code is not None else None,
        error=type(error).__name__ if error is not None else None,
        duration_s=round(time.time() - connection.connected_at, 3),
    )
