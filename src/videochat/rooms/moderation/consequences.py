"""What a ban, kick or mute does to what the person made before it (rules: rooms.policy).

The domains that own those things (the video library, live streams) register hooks on
the context (``AppContext.moderation_hooks``, set by ``runtime.open_context``); each
runs in the moderation request's unit of work, so what it changes in the database
commits with the action, and what must follow the commit it defers with
``db.unit_of_work.after_commit``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from videochat.context import AppContext


async def apply(
    action: str, session: AsyncSession, context: AppContext, room_id: str, user_id: str
) -> None:
    """Run every domain's hook for ``action`` ("ban", "kick" or "mute"), in order."""
    for hook in context.moderation_hooks.get(action, ()):
        await hook(session, context, room_id, user_id)
