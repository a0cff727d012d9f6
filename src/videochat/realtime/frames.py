"""Builders for the frames the gateway itself sends (protocol in docs/PROTOCOL.md)."""

from __future__ import annotations

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
    connection: Connection, *, role: str | None, max_call_size: int
) -> dict[str, Any]:
    """What a client needs to know about itself before live traffic: role and mute."""
    return {
        "type": "welcome",
        "room_id": connection.room_id,
        "user_id": connection.user_id,
        "connection_id": connection.id,
        "role": role,
        "muted": connection.muted,
        "max_call_size": max_call_size,
    }
