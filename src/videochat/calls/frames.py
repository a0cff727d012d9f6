"""The call's socket frames from clients: WebRTC signalling and device state.

Hand-validated slotted dataclasses, like the chat's: signalling comes in bursts of
ICE candidates, and checking three fields by hand costs less than a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from videochat.exceptions import BadRequest, NotFound, TooManyRequests

MEDIA_KINDS = ("audio", "video", "screen")


class BadSignal(BadRequest):
    frame_code = "bad_signal"

    def __init__(
        self, detail: str = "signal needs 'to' (a user id), 'data' and optionally 'to_connection'"
    ) -> None:
        super().__init__(detail)


class SignalRateLimited(TooManyRequests):
    frame_code = "rate_limited"

    def __init__(self, window_seconds: int) -> None:
        super().__init__("too much signalling to this peer; slow down", retry_after=window_seconds)


class PeerNotFound(NotFound):
    frame_code = "peer_not_found"

    def __init__(self) -> None:
        super().__init__("that peer is not in the room")


@dataclass(slots=True)
class SignalFrame:
    """``{"type": "signal", "to": user_id, "to_connection": id?, "data": {...}}``."""

    to: str
    to_connection: str | None
    data: dict[str, Any]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> SignalFrame:
        to, to_connection, data = raw.get("to"), raw.get("to_connection"), raw.get("data")
        if (
            not isinstance(to, str)
            or not isinstance(data, dict)
            or not (to_connection is None or isinstance(to_connection, str))
        ):
            raise BadSignal()
        return cls(to, to_connection, data)


@dataclass(slots=True)
class MediaStateFrame:
    """``{"type": "media_state", "audio": bool, ...}``; only the booleans given count."""

    changes: dict[str, bool]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> MediaStateFrame:
        return cls({kind: raw[kind] for kind in MEDIA_KINDS if isinstance(raw.get(kind), bool)})

    @property
    def turns_on(self) -> bool:
        """Whether any device is switched on."""
        return any(self.changes.values())
