"""What a ban, kick or mute does to the person's live streams (rooms.moderation hooks).

A ban ends them keeping nothing; a kick or a mute ends them and keeps the archive (what
was broadcast was allowed then). Ended once the action is committed.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from videochat.context import AppContext, ModerationHook
from videochat.db.unit_of_work import after_commit


def end_streams(reason: str, *, keep_recording: bool) -> ModerationHook:
    """A hook that ends the person's streams in the room with ``reason``."""

    async def hook(session: AsyncSession, context: AppContext, room_id: str, user_id: str) -> None:
        after_commit(
            session,
            partial(
                context.live.stop_streams_of,
                room_id,
                user_id,
                reason,
                keep_recording=keep_recording,
            ),
        )

    return hook
