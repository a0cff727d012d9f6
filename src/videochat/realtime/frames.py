"""Builders for the frames the gateway itself sends (protocol in docs/PROTOCOL.md)."""

from __future__ import annotations

from typing import Any

from videochat.kit.clock import isoformat, utcnow


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


def presence_frame(room_id: str, participants: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "presence", "room_id": room_id, "participants": participants}


def error_frame(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}
