"""Builders for the frames the server sends (protocol in docs/PROTOCOL.md)."""

from __future__ import annotations

from typing import Any

from videochat.db.models import Message
from videochat.kit.clock import isoformat, utcnow


def message_frame(
    message: Message, reactions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A chat message, the same shape live and in a reconnect replay."""
    return {
        "type": "message",
        "id": message.id,
        "user_id": message.user_id,
        "username": message.username,
        "room_id": message.room_id,
        "content": "" if message.deleted_at else message.content,
        "timestamp": isoformat(message.created_at),
        # A replay carries what happened since: edits and deletions.
        "edited_at": isoformat(message.edited_at) if message.edited_at else None,
        "deleted": message.deleted_at is not None,
        # A replay carries the reactions as they are now; a new message has none.
        "reactions": reactions or [],
    }


def message_edited_frame(message: Message) -> dict[str, Any]:
    return {
        "type": "message_edited",
        "id": message.id,
        "user_id": message.user_id,
        "content": message.content,
        "edited_at": isoformat(message.edited_at or utcnow()),
    }


def message_deleted_frame(message: Message, *, deleted_by: str) -> dict[str, Any]:
    return {"type": "message_deleted", "id": message.id, "deleted_by": deleted_by}


def reaction_frame(
    *,
    message_id: int,
    user_id: str,
    username: str,
    emoji: str,
    added: bool,
    reactions: list[dict[str, Any]],
) -> dict[str, Any]:
    """Someone added or removed an emoji; ``reactions`` is the message's new total."""
    return {
        "type": "reaction",
        "id": message_id,
        "user_id": user_id,
        "username": username,
        "emoji": emoji,
        "added": added,
        "reactions": reactions,
    }


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
