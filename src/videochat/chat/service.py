"""Chat rules: what a message may contain, storing it, reading history (the caller commits)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from videochat.chat import repository
from videochat.db.models import Message
from videochat.exceptions import BadRequest, Forbidden, NotFound
from videochat.kit.clock import utcnow
from videochat.kit.text import strip_controls
from videochat.rooms import policy
from videochat.rooms.repository import RoomView

REPLAY_LIMIT = 1000


def clean_content(raw: object, *, max_chars: int) -> str:
    """Validate message text: a non-empty string without control characters."""
    if not isinstance(raw, str):
        raise BadRequest("content must be a string")
    # Newlines and tabs stay; other control and format characters (bidi tricks) go.
    text = strip_controls(raw)
    if not text:
        raise BadRequest("content must not be empty")
    if len(text) > max_chars:
        raise BadRequest(f"content is longer than {max_chars} characters")
    return text


async def post(
    session: AsyncSession, *, room_id: str, user_id: str, username: str, content: str
) -> Message:
    """Add a message and learn its id (live messages go through chat/writer.py)."""
    return await repository.add(
        session, Message(room_id=room_id, user_id=user_id, username=username, content=content)
    )


async def history(
    session: AsyncSession, *, room_id: str, limit: int, before: int | None
) -> list[Message]:
    """A page of history ending just before ``before``, oldest first."""
    return await repository.page_before(session, room_id, limit=limit, before=before)


async def edit(
    session: AsyncSession, *, room_id: str, message_id: int, actor_id: str, content: str
) -> Message:
    """Change a message's text; only its author may."""
    message = await _editable(session, room_id=room_id, message_id=message_id)
    if message.user_id != actor_id:
        raise Forbidden("only the author can edit a message")
    message.content = content
    message.edited_at = utcnow()
    return message


async def delete(
    session: AsyncSession,
    *,
    room_id: str,
    message_id: int,
    actor_id: str,
    room: RoomView | None,
) -> Message:
    """Blank a message (its id stays, so cursors still work): the author's own, or
    for a manager, the message of someone ranked below them (rooms.policy)."""
    message = await _editable(session, room_id=room_id, message_id=message_id)
    allowed = message.user_id == actor_id or (
        room is not None and policy.may_delete_message(room, actor_id, message.user_id)
    )
    if not allowed:
        raise Forbidden(
            "only the author, or the owner or a moderator ranked above them, can delete a message"
        )
    message.deleted_at = utcnow()
    message.content = ""
    return message


async def _editable(session: AsyncSession, *, room_id: str, message_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None or message.room_id != room_id or message.deleted_at is not None:
        raise NotFound("Message not found")
    return message


async def missed(session: AsyncSession, *, room_id: str, since: int) -> list[Message]:
    """Every message after ``since`` (bounded), oldest first."""
    return list(await repository.after(session, room_id, since=since, limit=REPLAY_LIMIT))
