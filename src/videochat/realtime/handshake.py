"""The handshake: the gateway's own checks, and what the app gives it to let a socket in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.websockets import WebSocket

from videochat.context import AppContext
from videochat.kit.pagination import MAX_ID
from videochat.realtime.connection import Connection
from videochat.security.ratelimit import Limiter, client_ip


@dataclass(frozen=True, slots=True)
class Admitted:
    """What the handshake learned about the user, kept for the connection."""

    username: str
    muted: bool
    role: str | None
    # When the access token that opened the socket expires (None: open auth mode).
    expires_at: datetime | None = None
    # The call's running recording (its ``recording`` frame), for the welcome.
    recording: dict[str, Any] | None = None
    # Hub.moderation_published before admission read the room, and whether admission
    # made the user a member: whether a kick, ban or mute may have landed since (Confirm).
    moderation_seen: int = 0
    joined: bool = False


@dataclass(frozen=True, slots=True)
class Rechecked:
    """Confirm's answer: close the socket after all (code, reason), or its muted flag as
    it is now (None: as admitted)."""

    close: tuple[int, str] | None = None
    muted: bool | None = None


@dataclass(frozen=True, slots=True)
class Screened:
    """What the handshake's query asked for: a replay cursor and the protocol version."""

    since: int | None
    # 1: the prototype's frames only (no ``v`` asked); 2: the whole protocol (``?v=2``).
    version: int


class Refused(Exception):
    """The handshake is refused (HTTP 403 before accept); the message says why."""


# Checks who connects to which room (raises Refused) and makes them a member if needed.
Admit = Callable[[AppContext, WebSocket, str, str], Awaitable[Admitted]]
# Once the socket is in the hub: admission again, for what landed while it ran (a kick,
# ban or mute published before the socket was there to be closed or muted).
Confirm = Callable[[AppContext, str, str, Admitted], Awaitable[Rechecked]]
# Sends a reconnecting socket what it missed since a message id, before live frames.
Replay = Callable[[AppContext, Connection, int], Awaitable[None]]


# The protocol versions a client may ask for with ``?v=`` (docs/PROTOCOL.md).
VERSIONS = {"1": 1, "2": 2}


async def screen(context: AppContext, websocket: WebSocket) -> Screened:
    """Connection limits per address, ``since`` and ``v``, before any admission; Refused.

    On success the socket holds one of its address's slots (``Hub.claim_address``): the
    caller releases it when the socket ends, whatever happens in between.
    """
    settings = context.settings
    ip = client_ip(websocket.scope)
    if settings.rate_limit.enabled:
        limiter: Limiter = context.limiter
        if await limiter.retry_after(limiter.ws_connects, "ws-connect", ip) is not None:
            raise Refused("too many connection attempts from this address")
    since, version = _since(websocket), _version(websocket)
    # Last, and with no await between the check and the claim: handshakes arriving
    # together cannot all pass a count that none of them has added to yet.
    limit = settings.rate_limit.ws_connections_per_ip if settings.rate_limit.enabled else None
    if not context.hub.claim_address(ip, limit):
        raise Refused("too many open connections from this address")
    return Screened(since=since, version=version)


def _version(websocket: WebSocket) -> int:
    """The protocol the client asked for; without ``v``, the prototype's (1)."""
    asked = websocket.query_params.get("v")
    if asked is None:
        return 1
    version = VERSIONS.get(asked)
    if version is None:
        raise Refused("v must be 1 or 2")
    return version


def _since(websocket: WebSocket) -> int | None:
    if "since" not in websocket.query_params:
        return None
    try:
        since = int(websocket.query_params["since"])
    except ValueError as exc:
        raise Refused("since must be a message id") from exc
    if not 0 <= since <= MAX_ID:
        raise Refused("since must be a message id")
    return since
