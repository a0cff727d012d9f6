"""Emoji reactions on chat messages: what counts as one, adding and removing them."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.chat import repository
from videochat.db.models import Message, MessageReaction
from videochat.exceptions import BadRequest, NotFound

# Enough for any emoji sequence (family, flags, skin tones), too little for a sentence.
MAX_EMOJI_CODEPOINTS = 10
# Distinct emojis per message, and emojis one person may put on one message.
MAX_KINDS_PER_MESSAGE = 20
MAX_PER_USER_PER_MESSAGE = 10

# Joiners and selectors that glue emoji sequences together.
_GLUE = {"\u200d", "\ufe0f", "\u20e3"}


def clean_emoji(raw: object) -> str:
    """One emoji (sequence): symbols and their modifiers only, never text or markup."""
    if not isinstance(raw, str):
        raise BadRequest("emoji must be a string")
    emoji = unicodedata.normalize("NFC", raw.strip())
    if not emoji or len(emoji) > MAX_EMOJI_CODEPOINTS:
        raise BadRequest(f"emoji must be 1 to {MAX_EMOJI_CODEPOINTS} characters")
    if unicodedata.category(emoji[0]) != "So" or any(
        char not in _GLUE and unicodedata.category(char) not in {"So", "Sk", "Mn", "Me"}
        for char in emoji
    ):
        raise BadRequest("emoji must be an emoji")
    return emoji


def summarise(reactions: Sequence[MessageReaction]) -> list[dict[str, Any]]:
    """``[{"emoji", "count", "user_ids"}]`` in the order each emoji was first used."""
    by_emoji: dict[str, list[str]] = {}
    for reaction in reactions:
        by_emoji.setdefault(reaction.emoji, []).append(reaction.user_id)
    return [
        {"emoji": emoji, "count": len(users), "user_ids": users}
        for emoji, users in by_emoji.items()
    ]


async def set_reaction(
    session: AsyncSession,
    *,
    room_id: str,
    message_id: int,
    user_id: str,
    emoji: str,
    add: bool,
) -> list[dict[str, Any]]:
    """Add or remove one person's emoji; returns the message's reactions after it."""
    message = await session.get(Message, message_id)
    if message is None or message.room_id != room_id or message.deleted_at is not None:
        raise NotFound("Message not found")
    if add:
        await _check_room_for_one_more(session, message_id, user_id, emoji)
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await session.execute(
            insert(MessageReaction)
            .values(message_id=message_id, user_id=user_id, emoji=emoji)
            .on_conflict_do_nothing()
        )
    else:
        await session.execute(
            delete(MessageReaction).where(
                MessageReaction.message_id == message_id,
                MessageReaction.user_id == user_id,
                MessageReaction.emoji == emoji,
            )
        )
    found = await repository.reactions_of(session, [message_id])
    return summarise(found[message_id])


async def _check_room_for_one_more(
    session: AsyncSession, message_id: int, user_id: str, emoji: str
) -> None:
    on_message = MessageReaction.message_id == message_id
    kinds = set(await session.scalars(select(MessageReaction.emoji).where(on_message).distinct()))
    if emoji not in kinds and len(kinds) >= MAX_KINDS_PER_MESSAGE:
        raise BadRequest(f"a message can have at most {MAX_KINDS_PER_MESSAGE} kinds of emoji")
    mine = await session.scalar(
        select(func.count()).where(on_message, MessageReaction.user_id == user_id)
    )
    if (mine or 0) >= MAX_PER_USER_PER_MESSAGE:
        raise BadRequest(f"at most {MAX_PER_USER_PER_MESSAGE} reactions per message each")
