"""Media repositories and services never commit: the request or the job does, once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from videochat.config import Settings
from videochat.db.engine import create_sessionmaker
from videochat.db.models import Room, Video, VideoStatus
from videochat.media import repository, service
from videochat.realtime.broker import MemoryBroker
from videochat.realtime.hub import Hub


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    broker = MemoryBroker()
    await broker.start()
    try:
        yield Hub(broker, None)
    finally:
        await broker.stop()


async def _videos(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, VideoStatus]]:
    async with sessions() as session:
        rows = await session.execute(select(Video.title, Video.status).order_by(Video.title))
        return [(title, status) for title, status in rows]


async def test_media_writes_are_undone_by_a_rollback(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, hub: Hub
) -> None:
    async with sessions() as session:
        room = Room(name="Videos")
        session.add(room)
        await session.flush()
        kept = await service.create_slot(
            session, settings, room=room, uploader_id=None, title="kept", description=""
        )
        await session.commit()

    published: list[object] = []

    async def spy(_: str, frame: object) -> None:
        published.append(frame)

    hub.publish = spy  # type: ignore[method-assign]
    async with sessions() as session:
        await service.create_slot(
            session, settings, room=room, uploader_id=None, title="dropped", description=""
        )
        assert await repository.claim_upload(session, kept.id, now=kept.created_at)
        await repository.set_upload_length(session, kept.id, 10)
        video = await repository.get(session, kept.id)
        assert video is not None
        assert await service.mark_relayed(session, hub, settings, video, 10)
        await session.rollback()

    assert await _videos(sessions) == [("kept", VideoStatus.PENDING)]
    async with sessions() as session:
        again = await repository.get(session, kept.id)
        assert again is not None
        assert (again.upload_claimed_at, again.upload_length, again.size_bytes) == (
            None,
            None,
            None,
        )
        assert await session.scalar(select(func.count()).select_from(Video)) == 1
    # Announced only by a commit: the rolled-back "uploaded" never reached the room.
    assert published == []
