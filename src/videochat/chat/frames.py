"""The chat's socket frames: those clients send (typed, validated) and those it broadcasts.

Incoming frames are hand-validated slotted dataclasses rather than pydantic models:
``message`` is the hot path, and checking two fields by hand costs less than a model
(not frozen either: a frozen dataclass's ``__init__`` costs twice as much).
They check the shape only; the rules on content (length, controls, emoji) belong to
the flows in ``chat/flows.py``, which every producer goes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from videochat.db.models import Message
from videochat.exceptions import BadRequest
from videochat.kit.clock import isoformat, utcnow
from videochat.kit.pagination import MAX_ID


def _message_id(raw: dict[str, Any], kind: str) -> int:
    message_id = raw.get("id")
    if (
        not isinstance(message_id, int)
        or isinstance(message_id, bool)
        or not 1 <= message_id <= MAX_ID
    ):
        raise BadRequest(f"{kind} needs the message 'id'")
    return message_id


@dataclass(slots=True)
class PostFrame:
    """``{"type": "message", "content": ...}`` (or the legacy ``{"content": ...}``)."""

    content: object

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> PostFrame:
        return cls(raw.get("content"))


@dataclass(slots=True)
class EditFrame:
    message_id: int
    content: object

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> EditFrame:
        return cls(_message_id(raw, "edit"), raw.get("content"))


@dataclass(slots=True)
class DeleteFrame:
    message_id: int

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> DeleteFrame:
        return cls(_message_id(raw, "delete"))


@dataclass(slots=True)
class ReactionFrame:
    message_id: int
    emoji: object
    add: bool

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ReactionFrame:
        message_id = _message_id(raw, "reaction")
        add = raw.get("add", True)
        if not isinstance(add, bool):
            raise BadRequest("add must be true or false")
        return cls(message_id, raw.get("emoji"), add)


@dataclass(slots=True)
class TypingFrame:
    typing: bool

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> TypingFrame:
        return cls(bool(raw.get("typing", True)))


class MessageFields(Protocol):
    """What a message frame shows: a stored row (``Message``) or the writer's
    ``NewMessage``, which skips the ORM's bookkeeping for a message just inserted."""

    @property
    def id(self) -> int: ...
    @property
    def room_id(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def username(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def edited_at(self) -> datetime | None: ...
    @property
    def deleted_at(self) -> datetime | None: ...


def message_frame(
    message: MessageFields, reactions: list[dict[str, Any]] | None = None
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
