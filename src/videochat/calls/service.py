"""ICE servers for browsers, with TURN REST API credentials (coturn ``use-auth-secret``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from videochat.config import Settings


def turn_credentials(
    secret: str, user_id: str, ttl_seconds: int, *, now: float | None = None
) -> tuple[str, str]:
    """Username ``expiry:user_id`` and password base64(HMAC-SHA1(secret, username))."""
    expiry = int((now if now is not None else time.time()) + ttl_seconds)
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_configuration(settings: Settings, user_id: str) -> dict[str, Any]:
    """What a browser passes to ``RTCPeerConnection``, plus the call limits."""
    servers: list[dict[str, Any]] = []
    if settings.stun.urls:
        servers.append({"urls": settings.stun.urls})
    turn = settings.turn
    if turn.urls and turn.secret:
        username, credential = turn_credentials(
            turn.secret.get_secret_value(), user_id, turn.ttl_seconds
        )
        servers.append({"urls": turn.urls, "username": username, "credential": credential})
    return {
        "ice_servers": servers,
        "ice_transport_policy": settings.calls.ice_transport_policy,
        "ttl_seconds": turn.ttl_seconds,
        "max_call_size": settings.calls.max_call_size,
    }
