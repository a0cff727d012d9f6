"""Video processing jobs: probe + transcode to HLS off the event loop, with retries.

The endpoints only see ``JobQueue`` (``AppContext.video_jobs``): in-process by default
(``InProcessJobRunner``), or, with Redis configured, ``worker.RedisJobQueue`` feeding
``videochat worker`` processes; ``videochat.runtime`` picks one. Both run the same
``VideoProcessor``.
"""

from __future__ import annotations

import asyncio
import enum
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videochat.config import Settings
from videochat.db.models import Video, VideoStatus
from videochat.db.unit_of_work import after_commit, unit_of_work
from videochat.kit.clock import utcnow
from videochat.media import repository
from videochat.media.errors import MediaRejected
from videochat.media.probe import MediaLimits
from videochat.media.recordings import build_source, recording_folder
from videochat.media.recordings import discard as discard_recording
from videochat.media.service import publish_status
from videochat.media.storage import MediaStorage
from videochat.media.transcode import TranscodeResult, transcode_to_hls
from videochat.observability import metrics
from videochat.realtime.hub import Hub

log = structlog.get_logger(__name__)

PROCESSING_FAILED = "processing failed"
# How long shutdown waits for running transcodes to notice it.
STOP_TIMEOUT_SECONDS = 15.0


class JobQueue(Protocol):
    """Where uploaded videos go to be processed."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def enqueue(self, video_id: str) -> None:
        """Queue a committed, ``uploaded`` video for processing."""

    def snapshot(self) -> tuple[int, int]:
        """(waiting, running) jobs as last seen, without I/O."""
        ...

    async def stats(self) -> dict[str, int | str]:
        """Waiting and running jobs read now."""
        ...

    async def readiness(self) -> dict[str, Any]:
        """``/health/ready``'s entry: healthy while jobs can run, with the stats."""
        ...


class _Stopping(Exception):
    """Raised from the transcode's progress callback to abandon it (shutdown or cancel)."""


class Outcome(enum.Enum):
    DONE = "done"  # finished (ready or failed), or nothing to do
    RETRY = "retry"  # crashed with attempts left: back to "uploaded", run it again later


class VideoProcessor:
    """One video job, start to end: claim it, transcode off the loop, record the outcome.

    Shared by the in-process runner and ``videochat worker``; the database is the truth
    about a video (status, attempts), so any runner may pick up what another left.
    """

    def __init__(
        self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], hub: Hub
    ) -> None:
        self.sessionmaker = sessionmaker
        self.hub = hub
        self.app_settings = settings
        self.settings = settings.media
        self.sfu_settings = settings.sfu
        self.storage = MediaStorage(settings.data_dir)
        self._stopping = threading.Event()
        # Transcodes get their own threads so they never starve asyncio.to_thread users.
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.job_concurrency, thread_name_prefix="transcode"
        )
        self._running: set[asyncio.Future[TranscodeResult]] = set()

    async def prepare(self) -> None:
        await asyncio.to_thread(self.storage.ensure_dirs)

    def request_stop(self) -> None:
        """Make running transcodes give up at their next progress report."""
        self._stopping.set()

    async def wait_running(self) -> None:
        """Wait (a bounded time) for the transcodes running now to end."""
        if self._running:
            await asyncio.wait(self._running, timeout=STOP_TIMEOUT_SECONDS)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def process(self, video_id: str) -> Outcome:
        """Run one job; RETRY when it crashed and has attempts left."""
        if self._stopping.is_set():
            return Outcome.DONE  # still queued in the database for the next start
        video = await self._claim(video_id)
        if video is None:
            return Outcome.DONE
        log.info("video.processing", video_id=video_id, attempt=video.attempts)
        recording = await self._recording_folder(video_id)
        cancel = threading.Event()
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._transcode, video_id, cancel, recording
        )
        self._running.add(future)
        future.add_done_callback(metrics.time_processing())
        future.add_done_callback(self._running.discard)
        try:
            # Shielded: cancelling the job must not orphan the thread.
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The job was cancelled (worker shutdown, an abort): stop the thread before
            # letting go, so a retry never runs next to it. The video stays "processing".
            cancel.set()
            await asyncio.wait({future}, timeout=STOP_TIMEOUT_SECONDS)
            raise
        except _Stopping:
            log.info("video.processing_abandoned", video_id=video_id)
            return Outcome.DONE
        except MediaRejected as exc:
            await self._finish_failed(video_id, exc.reason)
            return Outcome.DONE
        except Exception:
            await asyncio.to_thread(self.storage.discard_output, video_id)
            if not await self._still_processing(video_id):
                # Deleted (or withdrawn by a ban) while it was transcoded: its files went
                # with it, which is what broke the job. Nothing to retry, nothing wrong.
                log.info("video.gone_while_processing", video_id=video_id)
                return Outcome.DONE
            log.exception("video.processing_error", video_id=video_id, attempt=video.attempts)
            if video.attempts < self.settings.job_max_attempts:
                await self._set(video_id, VideoStatus.UPLOADED)
                return Outcome.RETRY
            await self._finish_failed(video_id, PROCESSING_FAILED)
            return Outcome.DONE
        # A call recording counts in its owner's quota by the source composed for it (as
        # an upload by its bytes): read before the source is removed.
        size = await asyncio.to_thread(self._source_size, video_id) if recording else None
        await self._finish_ready(video_id, result, size_bytes=size)
        return Outcome.DONE

    def _source_size(self, video_id: str) -> int | None:
        try:
            return self.storage.source_path(video_id).stat().st_size
        except FileNotFoundError:
            return None

    def _transcode(
        self, video_id: str, cancel: threading.Event, recording: Path | None = None
    ) -> TranscodeResult:
        """The blocking part (worker thread): fresh output folder, transcode, publish it.

        A call recording's source is composed from its raw files first (once: a retry
        finds the source made).
        """
        self.storage.discard_output(video_id)

        def progress(_: float) -> None:
            if self._stopping.is_set() or cancel.is_set():
                raise _Stopping

        source = self.storage.source_path(video_id)
        if recording is not None and not source.exists():
            composing = self.storage.partial_path(video_id)
            build_source(
                recording,
                composing,
                max_seconds=self.sfu_settings.recording_max_seconds,
                max_bytes=self.sfu_settings.recording_max_bytes,
                progress=progress,
            )
            os.replace(composing, source)
            discard_recording(recording)

        result = transcode_to_hls(
            self.storage.source_path(video_id),
            self.storage.work_dir(video_id),
            segment_seconds=self.settings.segment_seconds,
            progress=progress,
            limits=MediaLimits.from_settings(self.settings),
            max_frame_rate=self.settings.transcode_max_frame_rate,
            threads=self.settings.transcode_threads,
        )
        self.storage.publish_output(video_id)
        return result

    async def _claim(self, video_id: str) -> Video | None:
        async with unit_of_work(self.sessionmaker) as session:
            video = await repository.get(session, video_id)
            if video is None or video.provider != "local":
                return None
            if video.status not in (VideoStatus.UPLOADED, VideoStatus.PROCESSING):
                return None
            if video.attempts < self.settings.job_max_attempts:
                claimed = await repository.transition(
                    session,
                    video_id,
                    from_=[VideoStatus.UPLOADED, VideoStatus.PROCESSING],
                    to=VideoStatus.PROCESSING,
                    attempts=video.attempts + 1,
                )
                if not claimed:
                    return None
                await session.refresh(video)
                after_commit(session, partial(publish_status, self.hub, video, self.app_settings))
                return video
        # Tried enough times already, each ended by a crash or a restart.
        await self._finish_failed(video_id, PROCESSING_FAILED)
        return None

    async def _still_processing(self, video_id: str) -> bool:
        async with self.sessionmaker() as session:
            video = await repository.get(session, video_id)
            return video is not None and video.status is VideoStatus.PROCESSING

    async def _set(self, video_id: str, status: VideoStatus, **values: object) -> Video | None:
        async with unit_of_work(self.sessionmaker) as session:
            moved = await repository.transition(
                session, video_id, from_=[VideoStatus.PROCESSING], to=status, **values
            )
            video = await repository.get(session, video_id) if moved else None
            if video is not None:
                await session.refresh(video)
            return video

    async def _finish_ready(
        self, video_id: str, result: TranscodeResult, *, size_bytes: int | None = None
    ) -> None:
        sized = {"size_bytes": size_bytes} if size_bytes is not None else {}
        video = await self._set(
            video_id,
            VideoStatus.READY,
            error=None,
            duration_seconds=result.duration_seconds,
            width=result.width,
            height=result.height,
            **sized,
        )
        # After the commit: until "ready" is recorded the source may be needed for a retry.
        await asyncio.to_thread(self.storage.discard_upload, video_id)
        if video is None:
            # Deleted (or withdrawn by a ban) while it was transcoded: it must not come
            # back, and what the transcode just published goes too.
            await asyncio.to_thread(self.storage.discard_output, video_id)
            log.info("video.gone_while_processing", video_id=video_id)
            return
        metrics.VIDEOS_PROCESSED.labels(outcome="ready").inc()
        log.info("video.ready", video_id=video_id, duration=result.duration_seconds)
        await publish_status(self.hub, video, self.app_settings)

    async def _recording_folder(self, video_id: str) -> Path | None:
        async with self.sessionmaker() as session:
            return await recording_folder(session, self.sfu_settings, video_id)

    async def _finish_failed(self, video_id: str, reason: str) -> None:
        # Files first: once "failed" is visible, nothing of the video is left on disk.
        await asyncio.to_thread(self.storage.discard_upload, video_id)
        await asyncio.to_thread(self.storage.discard_output, video_id)
        recording = await self._recording_folder(video_id)
        if recording is not None:
            await asyncio.to_thread(discard_recording, recording)
        async with unit_of_work(self.sessionmaker) as session:
            moved = await repository.transition(
                session,
                video_id,
                from_=[VideoStatus.UPLOADED, VideoStatus.PROCESSING],
                to=VideoStatus.FAILED,
                error=reason,
            )
            video = await repository.get(session, video_id)
            if video is not None:
                await session.refresh(video)
        if moved and video is not None:
            metrics.VIDEOS_PROCESSED.labels(outcome="failed").inc()
            log.info("video.failed", video_id=video_id, reason=reason)
            await publish_status(self.hub, video, self.app_settings)


UPLOAD_ABANDONED = "the upload was not finished before its slot expired"


async def sweep_abandoned_uploads(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], hub: Hub
) -> int:
    """Fail every upload whose slot expired unfinished and remove its bytes; how many.

    A slot claimed within its lifetime is left alone: a request may still be writing
    to it (a claim that old belongs to a request that died with its process).
    """
    storage = MediaStorage(settings.data_dir)
    now = utcnow()
    stale = now - timedelta(seconds=settings.media.upload_slot_ttl_seconds)
    async with sessionmaker() as session:
        found = await repository.abandoned_uploads(session, now=now, claimed_before=stale)
    swept = 0
    for video_id in found:
        # Bytes first: once "failed" is visible, nothing of the upload is left on disk.
        await asyncio.to_thread(storage.discard_upload, video_id)
        async with unit_of_work(sessionmaker) as session:
            moved = await repository.transition(
                session,
                video_id,
                from_=[VideoStatus.PENDING],
                to=VideoStatus.FAILED,
                error=UPLOAD_ABANDONED,
                upload_claimed_at=None,
            )
            video = await repository.get(session, video_id) if moved else None
            if video is not None:
                await session.refresh(video)
                after_commit(session, partial(publish_status, hub, video, settings))
        swept += bool(moved)
    if swept:
        log.info("video.uploads_swept", count=swept)
    return swept


async def sweep_uploads_forever(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], hub: Hub
) -> None:
    """Sweep abandoned uploads now and every ``upload_sweep_seconds`` (run as a task)."""
    while True:
        try:
            await sweep_abandoned_uploads(settings, sessionmaker, hub)
        except Exception:
            log.exception("video.upload_sweep_failed")  # the next round tries again
        await asyncio.sleep(settings.media.upload_sweep_seconds)


async def unfinished_videos(sessionmaker: async_sessionmaker[AsyncSession]) -> Sequence[str]:
    """Local videos a job still has to finish (``uploaded`` or ``processing``)."""
    async with sessionmaker() as session:
        return await repository.ids_with_status(
            session, VideoStatus.UPLOADED, VideoStatus.PROCESSING
        )


class InProcessJobRunner:
    """An asyncio queue drained by a few tasks; each transcode runs in a worker thread.

    Durable through the database: a video is ``uploaded`` or ``processing`` until a
    job finishes it, and start() queues every such video again, so a restart (or a
    crash) mid-job loses nothing.
    """

    def __init__(
        self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], hub: Hub
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings.media
        self.processor = VideoProcessor(settings, sessionmaker, hub)
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep = partial(sweep_uploads_forever, settings, sessionmaker, hub)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._running = 0

    def snapshot(self) -> tuple[int, int]:
        return self._queue.qsize(), self._running

    async def stats(self) -> dict[str, int | str]:
        queued, running = self.snapshot()
        return {"backend": "memory", "queued": queued, "running": running}

    async def readiness(self) -> dict[str, Any]:
        # Its worker tasks must be alive.
        alive = sum(1 for worker in self._workers if not worker.done())
        return {"status": "healthy" if alive else "unhealthy", "workers": alive} | (
            await self.stats()
        )

    async def start(self) -> None:
        """Start the workers and queue the jobs a previous run left unfinished."""
        await self.processor.prepare()
        self._workers = [
            asyncio.create_task(self._work(), name=f"video-job-{n}")
            for n in range(self.settings.job_concurrency)
        ]
        async with unit_of_work(self.sessionmaker) as session:
            # Single-instance mode: a claim that survived a restart belongs to a request
            # that died with the old process; free it so the upload can be retried/resumed.
            await repository.release_all_claims(session)
        leftover = await unfinished_videos(self.sessionmaker)
        for video_id in leftover:
            await self.enqueue(video_id)
        if leftover:
            log.info("video.jobs_recovered", count=len(leftover))
        self._sweeper = asyncio.create_task(self._sweep(), name="video-upload-sweep")

    async def stop(self) -> None:
        """Abandon running transcodes (their videos stay queued in the database) and stop."""
        self.processor.request_stop()
        for timer in self._timers:
            timer.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self.processor.wait_running()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        self.processor.shutdown()

    async def enqueue(self, video_id: str) -> None:
        """Queue a video unless it is already waiting."""
        self._put(video_id)

    def _put(self, video_id: str) -> None:
        if video_id not in self._queued:
            self._queued.add(video_id)
            self._queue.put_nowait(video_id)

    def _enqueue_later(self, video_id: str, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(timer)
            self._put(video_id)

        timer = loop.call_later(delay, fire)
        self._timers.add(timer)

    async def _work(self) -> None:
        while True:
            video_id = await self._queue.get()
            self._queued.discard(video_id)
            self._running += 1
            try:
                outcome = await self.processor.process(video_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Only bookkeeping (database, broker) can land here; the video stays
                # queued in the database and is picked up again on the next start.
                log.exception("video.job_crashed", video_id=video_id)
                continue
            finally:
                self._running -= 1
            if outcome is Outcome.RETRY:
                self._enqueue_later(video_id, self.settings.job_retry_delay_seconds)
