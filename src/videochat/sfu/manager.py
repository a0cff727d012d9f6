"""The SFU part of a running app: the Janus pool and the periodic sweep of grants."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videochat.config import SfuSettings
from videochat.realtime.hub import Hub
from videochat.sfu import cleanup, feeds, recording, service
from videochat.sfu.instances import JanusPool

log = structlog.get_logger(__name__)


class SfuManager:
    """Started by ``runtime.open_context`` when ``VIDEOCHAT_SFU__JANUS_URL`` is set."""

    def __init__(
        self,
        settings: SfuSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: Hub,
        video_jobs: recording.VideoJobs,
        storage_left: recording.StorageLeft,
    ) -> None:
        self.settings = settings
        self.storage_left = storage_left
        self.sessionmaker = sessionmaker
        self.hub = hub
        self.video_jobs = video_jobs
        self.pool = JanusPool(settings)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever(), name="sfu-sweep")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.pool.close()

    async def sweep(self) -> dict[str, int]:
        swept = await service.sweep(self.sessionmaker, self.pool)
        # Publishers that are not their grant holder's registered handle are kicked.
        swept["feed_checks_failed"] = await feeds.sweep(self.sessionmaker, self.pool)
        # Recordings past their time limit, before their VideoRoom could be swept.
        swept["recordings_stopped"] = await recording.stop_overdue(
            self.sessionmaker, self.pool, self.video_jobs, self.hub
        )
        # Raw folders of recordings whose room was deleted without ``cleanup.room_deleted``.
        swept["orphan_folders"] = await cleanup.sweep_orphan_folders(
            self.sessionmaker, self.settings.recording_dir
        )
        return swept

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_seconds)
            try:
                swept = await self.sweep()
            except Exception:  # a database or Janus outage: the next round tries again
                log.exception("sfu.sweep_failed")
                continue
            if any(swept.values()):
                log.info("sfu.swept", **swept)
