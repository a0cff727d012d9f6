"""Queries on messages; the id is the order of a room's history."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.db.models import Message, MessageReaction


async def add(session: AsyncSession, message: Message) -> Message:
    """Insert a message and learn its id (the caller commits)."""
    session.add(message)
    await session.flush()
    return message


async def page_before(
    session: AsyncSession, room_id: str, *, limit: int, before: int | None
) -> list[Message]:
    """The ``limit`` messages before the cursor, oldest first."""
    statement = select(Message).where(Message.room_id == room_id)
    if before is not None:
        statement = statement.where(Message.id < before)
    statement = statement.order_by(Message.id.desc()).limit(limit)
    newest_first = (await session.scalars(statement)).all()
    return list(reversed(newest_first))


async def after(
    session: AsyncSession, room_id: str, *, since: int, limit: int
) -> Sequence[Message]:
    """Messages after the cursor, oldest first (a reconnect's replay)."""
    statement = (
        select(Message)
        .where(Message.room_id == room_id, Message.id > since)
        .order_by(Message.id)
        .limit(limit)
    )
    return (await session.scalars(statement)).all()


async def count_messages(session: AsyncSession) -> int:
    """How many messages are stored."""
    return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def reactions_of(
    session: AsyncSession, message_ids: Sequence[int]
) -> dict[int, list[MessageReaction]]:
    """Every reaction on these messages, by message, oldest first."""
    found: dict[int, list[MessageReaction]] = {message_id: [] for message_id in message_ids}
    if not message_ids:
        return found
    statement = (
        select(MessageReaction)
        .where(MessageReaction.message_id.in_(message_ids))
        .order_by(MessageReaction.created_at)
    )
    for reaction in (await session.scalars(statement)).all():
        found[reaction.message_id].append(reaction)
    return found
