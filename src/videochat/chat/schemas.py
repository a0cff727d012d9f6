"""Shapes of chat messages."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from videochat.db.models import Message


class MessageOut(BaseModel):
    id: int
    user_id: str | None
    username: str
    room_id: str
    content: str
    timestamp: datetime
    edited_at: datetime | None = None
    deleted: bool = False

    @classmethod
    def from_model(cls, message: Message) -> MessageOut:
        return cls(
            id=message.id,
            user_id=message.user_id,
            username=message.username,
            room_id=message.room_id,
            content="" if message.deleted_at else message.content,
            timestamp=message.created_at,
            edited_at=message.edited_at,
            deleted=message.deleted_at is not None,
        )
