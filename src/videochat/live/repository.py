"""Queries on live streams (they never commit: whoever opened the session does)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.db.models import LiveStream, LiveStreamStatus


async def get(session: AsyncSession, stream_id: str) -> LiveStream | None:
    """One stream by id."""
    return await session.get(LiveStream, stream_id)


async def get_by_playback_id(session: AsyncSession, playback_id: str) -> LiveStream | None:
    """The stream a playback URL names."""
    statement = select(LiveStream).where(LiveStream.playback_id == playback_id)
    return (await session.scalars(statement)).first()


async def list_for_room(
    session: AsyncSession, room_id: str, *, limit: int, offset: int
) -> Sequence[LiveStream]:
    """A room's streams, newest first."""
    statement = (
        select(LiveStream)
        .where(LiveStream.room_id == room_id)
        .order_by(LiveStream.created_at.desc(), LiveStream.id)
        .limit(limit)
        .offset(offset)
    )
    return (await session.scalars(statement)).all()


async def ids_with_status(session: AsyncSession, status: LiveStreamStatus) -> Sequence[str]:
    """Ids of the streams in one state."""
    statement = select(LiveStream.id).where(LiveStream.status == status)
    return (await session.scalars(statement)).all()


async def unfinished_of(session: AsyncSession, room_id: str, owner_id: str) -> Sequence[str]:
    """Ids of someone's streams in a room that are ready or live."""
    statement = select(LiveStream.id).where(
        LiveStream.room_id == room_id,
        LiveStream.owner_id == owner_id,
        LiveStream.status.in_([LiveStreamStatus.READY, LiveStreamStatus.LIVE]),
    )
    return (await session.scalars(statement)).all()


async def transition(
    session: AsyncSession,
    stream_id: str,
    *,
    from_: Sequence[LiveStreamStatus],
    to: LiveStreamStatus,
    **values: Any,
) -> bool:
    """Move a stream to ``to`` only if it is in one of ``from_``; report success."""
    result: Any = await session.execute(
        update(LiveStream)
        .where(LiveStream.id == stream_id, LiveStream.status.in_(from_))
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)


async def set_video(session: AsyncSession, stream_id: str, video_id: str) -> None:
    """Link an ended stream to its recording."""
    await session.execute(
        update(LiveStream).where(LiveStream.id == stream_id).values(video_id=video_id)
    )
