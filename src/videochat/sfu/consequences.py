"""What a kick, ban or mute does in the room's VideoRoom (rooms.moderation hooks)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from videochat.context import AppContext
from videochat.sfu import service


async def remove_from_call(
    session: AsyncSession, context: AppContext, room_id: str, user_id: str
) -> None:
    """Kick or ban: their grant withdrawn, out of the VideoRoom once committed."""
    if context.sfu is not None:
        await service.withdraw(session, context.sfu.pool, room_id, user_id)


async def mute_in_call(
    session: AsyncSession, context: AppContext, room_id: str, user_id: str
) -> None:
    """Mute: Janus stops forwarding the streams they publish, once committed."""
    if context.sfu is not None:
        await service.mute(session, context.sfu.pool, room_id, user_id)
