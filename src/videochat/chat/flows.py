"""One flow per chat action, whichever door it came through: validate, check the rules,
store, commit, then announce.

New messages are stored and broadcast by the group-commit writer (chat/writer.py),
which keeps the room's id order. Edits, deletions and reactions work in the caller's
unit of work (``db.unit_of_work``): the flow stores and queues the broadcast as an
after-commit hook, so nothing is announced that could still roll back.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from videochat.chat import reactions
from videochat.chat import service as chat
from videochat.chat.frames import message_deleted_frame, message_edited_frame, reaction_frame
from videochat.chat.reactions import clean_emoji
from videochat.chat.service import clean_content
from videochat.chat.spam import SpamGuard
from videochat.chat.writer import MessageWriter, NewMessage
from videochat.db.models import Message
from videochat.db.unit_of_work import after_commit
from videochat.realtime.hub import Hub
from videochat.rooms import repository as rooms_repository
from videochat.rooms.policy import Act, refuse_if_muted


class Sender(Protocol):
    """Who acts, in which room (a socket's connection is one)."""

    room_id: str
    user_id: str
    username: str
    muted: bool


async def post_message(
    writer: MessageWriter,
    *,
    sender: Sender,
    content: object,
    max_chars: int,
    spam: SpamGuard | None = None,
) -> NewMessage:
    """Store a new message and broadcast it (committed first, in the room's id order)."""
    return await submit_message(
        writer, sender=sender, content=content, max_chars=max_chars, spam=spam
    )


def submit_message(
    writer: MessageWriter,
    *,
    sender: Sender,
    content: object,
    max_chars: int,
    spam: SpamGuard | None = None,
) -> asyncio.Future[NewMessage]:
    """``post_message``'s rules now, its store and broadcast in the writer's next batch
    (the future settles when both are done, or with why not)."""
    refuse_if_muted(sender.muted, Act.CHAT)
    text = clean_content(content, max_chars=max_chars)
    if spam is not None:
        spam.check(text)
    return writer.enqueue(
        room_id=sender.room_id, user_id=sender.user_id, username=sender.username, content=text
    )


async def edit_message(
    session: AsyncSession,
    hub: Hub,
    *,
    sender: Sender,
    message_id: int,
    content: object,
    max_chars: int,
) -> Message:
    """Change the text of one's own message; announced once committed."""
    refuse_if_muted(sender.muted, Act.CHAT)
    text = clean_content(content, max_chars=max_chars)
    edited = await chat.edit(
        session,
        room_id=sender.room_id,
        message_id=message_id,
        actor_id=sender.user_id,
        content=text,
    )
    _announce(session, hub, sender.room_id, message_edited_frame(edited))
    return edited


async def delete_message(
    session: AsyncSession, hub: Hub, *, sender: Sender, message_id: int
) -> Message:
    """Blank a message (one's own, or a lower rank's for a manager); announced once committed."""
    # Who outranks whom (rooms.policy.may_delete_message) from the read cache.
    room = await rooms_repository.get_room_view(session, sender.room_id)
    refuse_if_muted(sender.muted, Act.DELETE_OWN)
    deleted = await chat.delete(
        session,
        room=room,
        room_id=sender.room_id,
        message_id=message_id,
        actor_id=sender.user_id,
    )
    _announce(
        session, hub, sender.room_id, message_deleted_frame(deleted, deleted_by=sender.user_id)
    )
    return deleted


async def react(
    session: AsyncSession, hub: Hub, *, sender: Sender, message_id: int, emoji: object, add: bool
) -> list[dict[str, Any]]:
    """Add or remove the sender's emoji on a message; announced once committed."""
    refuse_if_muted(sender.muted, Act.CHAT)
    cleaned = clean_emoji(emoji)
    now = await reactions.set_reaction(
        session,
        room_id=sender.room_id,
        message_id=message_id,
        user_id=sender.user_id,
        emoji=cleaned,
        add=add,
    )
    frame = reaction_frame(
        message_id=message_id,
        user_id=sender.user_id,
        username=sender.username,
        emoji=cleaned,
        added=add,
        reactions=now,
    )
    _announce(session, hub, sender.room_id, frame)
    return now


async def typing(hub: Hub, *, sender: Sender, typing: bool, connection_id: str) -> None:
    """Tell the others someone is typing (not while muted: they may not write)."""
    refuse_if_muted(sender.muted, Act.TYPE)
    await hub.publish(
        sender.room_id,
        {
            "type": "typing",
            "user_id": sender.user_id,
            "username": sender.username,
            "typing": typing,
        },
        except_connection=connection_id,
    )


def _announce(session: AsyncSession, hub: Hub, room_id: str, frame: dict[str, Any]) -> None:
    after_commit(session, partial(hub.publish, room_id, frame))
