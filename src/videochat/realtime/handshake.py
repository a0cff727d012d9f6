"""What the gateway is given to let a socket in and catch it up: the app composes them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.websockets import WebSocket

from videochat.context import AppContext
from videochat.realtime.connection import Connection


@dataclass(frozen=True, slots=True)
class Admitted:
    """What the handshake learned about the user, kept for the connection."""

    username: str
    muted: bool
    role: str | None


class Refused(Exception):
    """The handshake is refused (HTTP 403 before accept); the message says why."""


# Checks who connects to which room (raises Refused) and makes them a member if needed.
Admit = Callable[[AppContext, WebSocket, str, str], Awaitable[Admitted]]
# Sends a reconnecting socket what it missed since a message id, before live frames.
Replay = Callable[[AppContext, Connection, int], Awaitable[None]]
