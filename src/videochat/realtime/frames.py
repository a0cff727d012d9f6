"""Builders for the frames the gateway itself sends (protocol in docs/PROTOCOL.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from videochat.kit.clock import isoformat, utcnow
from videochat.realtime.connection import Connection


def user_joined_frame(*, user_id: str, username: str) -> dict[str, Any]:
    return {
        "type": "user_joined",
        "message": f"{username} joined the chat",
        "user_id": user_id,
        "username": username,
        "timestamp": isoformat(utcnow()),
    }


def user_left_frame(*, user_id: str, username: str) -> dict[str, Any]:
    return {
        "type": "user_left",
        "message": f"{username} left the chat",
        "user_id": user_id,
        "username": username,
        "timestamp": isoformat(utcnow()),
    }


def error_frame(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def welcome_frame(
    connection: Connection,
    *,
    role: str | None,
    max_call_size: int,
    recording: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a client needs to know before live traffic: role, mute, a running recording."""
    return {
        "type": "welcome",
        "room_id": connection.room_id,
        "user_id": connection.user_id,
        "connection_id": connection.id,
        "role": role,
        "muted": connection.muted,
        "max_call_size": max_call_size,
        # The ``recording`` frame of the call's running recording, or None.
        "recording": recording,
    }


def recording_frame(
    *,
    room_id: str,
    active: bool,
    by: str | None,
    started_at: datetime,
    stopped_at: datetime | None = None,
    video_id: str | None = None,
) -> dict[str, Any]:
    """The call is being recorded (``active``), or stopped being: everyone must know."""
    frame: dict[str, Any] = {
        "type": "recording",
        "room_id": room_id,
        "active": active,
        "by": by,  # who started it (active) or stopped it (None: its time limit)
        "started_at": isoformat(started_at),
    }
    if not active:
        frame["stopped_at"] = isoformat(stopped_at) if stopped_at else None
        frame["video_id"] = video_id  # the library video it becomes
    return frame
