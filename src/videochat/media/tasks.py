"""Video processing jobs: probe + transcode to HLS off the event loop, with retries.

The runner sits behind ``JobQueue`` so a Redis-backed queue feeding ``videochat
worker`` processes can replace the in-process one without touching the endpoints.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import structlog

from videochat.context import AppContext
from videochat.db.models import Video, VideoStatus
from videochat.media import repository
from videochat.media.errors import MediaRejected
from videochat.media.service import publish_status
from videochat.media.storage import MediaStorage
from videochat.media.transcode import TranscodeResult, transcode_to_hls
from videochat.observability import metrics

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


class _Stopping(Exception):
    """Raised from the transcode's progress callback to abandon it at shutdown."""


class InProcessJobRunner:
    """An asyncio queue drained by a few tasks; each transcode runs in a worker thread.

    Durable through the database: a video is ``uploaded`` or ``processing`` until a
    job finishes it, and start() queues every such video again, so a restart (or a
    crash) mid-job loses nothing.
    """

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.settings = context.settings.media
        self.storage = MediaStorage(context.settings.data_dir)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._stopping = threading.Event()
        # Transcodes get their own threads so they never starve asyncio.to_thread users.
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.job_concurrency, thread_name_prefix="transcode"
        )
        self._running: set[asyncio.Future[TranscodeResult]] = set()

    async def start(self) -> None:
        """Start the workers and queue the jobs a previous run left unfinished."""
        await asyncio.to_thread(self.storage.ensure_dirs)
        self._workers = [
            asyncio.create_task(self._work(), name=f"video-job-{n}")
            for n in range(self.settings.job_concurrency)
        ]
        async with self.context.sessionmaker() as session:
            # Single-instance mode: a claim that survived a restart belongs to a request
            # that died with the old process; free it so the upload can be retried/resumed.
            await repository.release_all_claims(session)
            leftover = await repository.ids_with_status(
                session, VideoStatus.UPLOADED, VideoStatus.PROCESSING
            )
        for video_id in leftover:
            await self.enqueue(video_id)
        if leftover:
            log.info("video.jobs_recovered", count=len(leftover))

    async def stop(self) -> None:
        """Abandon running transcodes (their videos stay queued in the database) and stop."""
        self._stopping.set()
        for timer in self._timers:
            timer.cancel()
        # The progress callback makes running transcodes give up at their next report.
        if self._running:
            await asyncio.wait(self._running, timeout=STOP_TIMEOUT_SECONDS)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        self._executor.shutdown(wait=False, cancel_futures=True)

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
            try:
                await self.process(video_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Only bookkeeping (database, broker) can land here; the video stays
                # queued in the database and is picked up again on the next start.
                log.exception("video.job_crashed", video_id=video_id)

    async def process(self, video_id: str) -> None:
        """Run one job: claim the video, transcode it, record the outcome."""
        video = await self._claim(video_id)
        if video is None:
            return
        log.info("video.processing", video_id=video_id, attempt=video.attempts)
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, self._transcode, video_id
            )
            self._running.add(future)
            future.add_done_callback(self._running.discard)
            # Shielded: cancelling the job must not orphan the thread; stop() waits for it.
            result = await asyncio.shield(future)
        except _Stopping:
            log.info("video.processing_abandoned", video_id=video_id)
            return
        except MediaRejected as exc:
            await self._finish_failed(video_id, exc.reason)
            return
        except Exception:
            log.exception("video.processing_error", video_id=video_id, attempt=video.attempts)
            await asyncio.to_thread(self.storage.discard_output, video_id)
            if video.attempts < self.settings.job_max_attempts:
                await self._set(video_id, VideoStatus.UPLOADED)
                self._enqueue_later(video_id, self.settings.job_retry_delay_seconds)
            else:
                await self._finish_failed(video_id, PROCESSING_FAILED)
            return
        await self._finish_ready(video_id, result)

    def _transcode(self, video_id: str) -> TranscodeResult:
        """The blocking part (worker thread): fresh output folder, transcode, publish it."""
        self.storage.discard_output(video_id)

        def progress(_: float) -> None:
            if self._stopping.is_set():
                raise _Stopping

        result = transcode_to_hls(
            self.storage.source_path(video_id),
            self.storage.work_dir(video_id),
            segment_seconds=self.settings.segment_seconds,
            progress=progress,
        )
        self.storage.publish_output(video_id)
        return result

    async def _claim(self, video_id: str) -> Video | None:
        async with self.context.sessionmaker() as session:
            video = await repository.get(session, video_id)
            if video is None or video.status not in (VideoStatus.UPLOADED, VideoStatus.PROCESSING):
                return None
            if video.attempts >= self.settings.job_max_attempts:
                # Tried enough times already, each ended by a crash or a restart.
                await self._finish_failed(video_id, PROCESSING_FAILED)
                return None
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
            await publish_status(self.context.hub, video)
            return video

    async def _set(self, video_id: str, status: VideoStatus, **values: object) -> Video | None:
        async with self.context.sessionmaker() as session:
            moved = await repository.transition(
                session, video_id, from_=[VideoStatus.PROCESSING], to=status, **values
            )
            video = await repository.get(session, video_id) if moved else None
            if video is not None:
                await session.refresh(video)
            return video

    async def _finish_ready(self, video_id: str, result: TranscodeResult) -> None:
        video = await self._set(
            video_id,
            VideoStatus.READY,
            error=None,
            duration_seconds=result.duration_seconds,
            width=result.width,
            height=result.height,
        )
        # After the commit: until "ready" is recorded the source may be needed for a retry.
        await asyncio.to_thread(self.storage.discard_upload, video_id)
        metrics.VIDEOS_PROCESSED.labels(outcome="ready").inc()
        if video is not None:
            log.info("video.ready", video_id=video_id, duration=result.duration_seconds)
            await publish_status(self.context.hub, video)

    async def _finish_failed(self, video_id: str, reason: str) -> None:
        # Files first: once "failed" is visible, nothing of the video is left on disk.
        await asyncio.to_thread(self.storage.discard_upload, video_id)
        await asyncio.to_thread(self.storage.discard_output, video_id)
        async with self.context.sessionmaker() as session:
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
            await publish_status(self.context.hub, video)


def create_job_queue(context: AppContext) -> JobQueue:
    """The job queue for this deployment (in-process; Redis workers are a later step)."""
    return InProcessJobRunner(context)


def get_job_queue(app_state: object) -> JobQueue:
    """The running app's job queue."""
    queue: JobQueue | None = getattr(app_state, "video_jobs", None)
    if queue is None:
        raise RuntimeError("the video job queue is not running")
    return queue
