"""Shapes of chat messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from videochat.db.models import Message


class ReactionOut(BaseModel):
    emoji: str
    count: int
    user_ids: list[str]


class MessageOut(BaseModel):
    id: int
    user_id: str | None
    username: str
    room_id: str
    content: str
    timestamp: datetime
    edited_at: datetime | None = None
    deleted: bool = False
    reactions: list[ReactionOut] = []

    @classmethod
    def from_model(
        cls, message: Message, reactions: list[dict[str, Any]] | None = None
    ) -> MessageOut:
        return cls(
            id=message.id,
            user_id=message.user_id,
            username=message.username,
            room_id=message.room_id,
            content="" if message.deleted_at else message.content,
            timestamp=message.created_at,
            edited_at=message.edited_at,
            deleted=message.deleted_at is not None,
            reactions=[ReactionOut(**reaction) for reaction in reactions or []],
        )
