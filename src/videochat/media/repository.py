"""Queries on videos. Nothing here commits: whoever opened the session does (db.unit_of_work)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.db.models import Video, VideoStatus
from videochat.kit.clock import utcnow


async def get(session: AsyncSession, video_id: str) -> Video | None:
    """One video by id."""
    return await session.get(Video, video_id)


async def get_by_upload_id(session: AsyncSession, upload_id: str) -> Video | None:
    """The video an upload slot belongs to."""
    return (await session.scalars(select(Video).where(Video.upload_id == upload_id))).first()


async def get_by_external_id(session: AsyncSession, external_id: str) -> Video | None:
    """The video a provider knows by external_id."""
    statement = select(Video).where(Video.external_id == external_id)
    return (await session.scalars(statement)).first()


async def list_for_room(
    session: AsyncSession, room_id: str, *, limit: int, offset: int
) -> Sequence[Video]:
    """A room's videos, newest first."""
    statement = (
        select(Video)
        .where(Video.room_id == room_id)
        .order_by(Video.created_at.desc(), Video.id)
        .limit(limit)
        .offset(offset)
    )
    return (await session.scalars(statement)).all()


async def ids_with_status(
    session: AsyncSession, *statuses: VideoStatus, provider: str = "local"
) -> Sequence[str]:
    """Ids of one provider's videos in any of these states, oldest first."""
    statement = (
        select(Video.id)
        .where(Video.status.in_(statuses), Video.provider == provider)
        .order_by(Video.created_at, Video.id)
    )
    return (await session.scalars(statement)).all()


async def claim_upload(session: AsyncSession, video_id: str, *, now: datetime) -> bool:
    """Atomically mark a pending slot as being written; False if someone else holds it."""
    result: Any = await session.execute(
        update(Video)
        .where(
            Video.id == video_id,
            Video.status == VideoStatus.PENDING,
            Video.upload_claimed_at.is_(None),
        )
        .values(upload_claimed_at=now, updated_at=now)
    )
    return bool(result.rowcount == 1)


async def release_upload(session: AsyncSession, video_id: str) -> None:
    """Free a slot whose upload was refused or cut off, so the uploader can try again."""
    await session.execute(
        update(Video)
        .where(Video.id == video_id, Video.status == VideoStatus.PENDING)
        .values(upload_claimed_at=None, updated_at=utcnow())
    )


async def transition(
    session: AsyncSession,
    video_id: str,
    *,
    from_: Sequence[VideoStatus],
    to: VideoStatus,
    **values: Any,
) -> bool:
    """Move a video to ``to`` only if it is in one of ``from_``; report success."""
    result: Any = await session.execute(
        update(Video)
        .where(Video.id == video_id, Video.status.in_(from_))
        .values(status=to, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)


async def set_upload_length(session: AsyncSession, video_id: str, length: int) -> bool:
    """Record a deferred tus Upload-Length, once."""
    result: Any = await session.execute(
        update(Video)
        .where(Video.id == video_id, Video.upload_length.is_(None))
        .values(upload_length=length, updated_at=utcnow())
    )
    return bool(result.rowcount == 1)


async def set_size_if_missing(session: AsyncSession, video_id: str, size: int) -> None:
    """Record a video's size unless it is known already."""
    await session.execute(
        update(Video)
        .where(Video.id == video_id, Video.size_bytes.is_(None))
        .values(size_bytes=size, upload_claimed_at=None, updated_at=utcnow())
    )


async def delete_pending(session: AsyncSession, video_id: str) -> bool:
    """Delete a video that never got its bytes."""
    result: Any = await session.execute(
        delete(Video).where(Video.id == video_id, Video.status == VideoStatus.PENDING)
    )
    return bool(result.rowcount == 1)


async def release_all_claims(session: AsyncSession) -> int:
    """Free every pending slot's claim (start-up: no request of ours is writing yet)."""
    result: Any = await session.execute(
        update(Video)
        .where(Video.status == VideoStatus.PENDING, Video.upload_claimed_at.is_not(None))
        .values(upload_claimed_at=None)
    )
    return int(result.rowcount or 0)
