"""Queries on videos. Nothing here commits: whoever opened the session does (db.unit_of_work)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.db.models import User, Video, VideoStatus
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


async def delete_video(session: AsyncSession, video_id: str) -> bool:
    """Delete a video in any state; False if it was gone already (a concurrent delete).

    A live stream's link to its recording is cleared by the foreign key (SET NULL).
    """
    result: Any = await session.execute(delete(Video).where(Video.id == video_id))
    return bool(result.rowcount == 1)


async def release_all_claims(session: AsyncSession) -> int:
    """Free every pending slot's claim (start-up: no request of ours is writing yet)."""
    result: Any = await session.execute(
        update(Video)
        .where(Video.status == VideoStatus.PENDING, Video.upload_claimed_at.is_not(None))
        .values(upload_claimed_at=None)
    )
    return int(result.rowcount or 0)


async def lock_uploader(session: AsyncSession, user_id: str) -> None:
    """Serialise one user's upload-slot changes until the transaction ends.

    A no-op UPDATE of the user's row: a row lock on PostgreSQL, the write lock on
    SQLite. Counts read after it cannot change under the caller, so two concurrent
    slot creations cannot both pass a per-user cap.
    """
    await session.execute(update(User).where(User.id == user_id).values(joined_at=User.joined_at))


def _live_slot(now: datetime) -> Any:
    """A pending video whose slot still accepts bytes."""
    return and_(Video.status == VideoStatus.PENDING, Video.upload_expires_at > now)


async def count_open_slots(session: AsyncSession, uploader_id: str, *, now: datetime) -> int:
    """A user's upload slots that are unfinished and not expired."""
    statement = (
        select(func.count())
        .select_from(Video)
        .where(Video.uploader_id == uploader_id, _live_slot(now))
    )
    return int(await session.scalar(statement) or 0)


async def stored_bytes(
    session: AsyncSession, uploader_id: str, *, now: datetime, excluding: str | None = None
) -> int:
    """Bytes a user's videos take or have reserved: received sizes, declared tus lengths."""
    counted = case(
        (Video.status == VideoStatus.PENDING, Video.upload_length), else_=Video.size_bytes
    )
    statement = select(func.coalesce(func.sum(counted), 0)).where(
        Video.uploader_id == uploader_id,
        Video.status != VideoStatus.FAILED,
        or_(Video.status != VideoStatus.PENDING, Video.upload_expires_at > now),
    )
    if excluding is not None:
        statement = statement.where(Video.id != excluding)
    return int(await session.scalar(statement) or 0)


async def abandoned_uploads(
    session: AsyncSession, *, now: datetime, claimed_before: datetime
) -> Sequence[str]:
    """Pending videos whose slot expired, unless a request (claimed since) still writes."""
    statement = (
        select(Video.id)
        .where(
            Video.status == VideoStatus.PENDING,
            Video.upload_expires_at <= now,
            or_(Video.upload_claimed_at.is_(None), Video.upload_claimed_at < claimed_before),
        )
        .order_by(Video.upload_expires_at, Video.id)
    )
    return (await session.scalars(statement)).all()
