"""Video jobs through Redis: the API's ``RedisJobQueue`` and the ``videochat worker`` process.

Built on SAQ (a Redis job queue for asyncio). What makes a job survive:

- the API enqueues only after the ``uploaded`` status is committed, keyed by the
  video id, so the same video is never queued twice while a job for it is pending;
- a worker takes a job by moving it atomically from the queued list to the active list
  (``BLMOVE``): a worker dying between the two never drops it;
- a running job refreshes its heartbeat every few seconds; any worker's sweep retries
  an active job whose heartbeat went silent for ``job_heartbeat_seconds`` (its worker
  was killed), so another worker redoes it;
- a crash inside a job is retried after ``job_retry_delay_seconds``; the database
  counts attempts and fails the video after ``job_max_attempts``;
- every worker, at start and then periodically, re-queues the ``uploaded`` and
  ``processing`` videos that have no job (say, an API instance died between its
  commit and its enqueue, or Redis lost its data).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import redis.asyncio as aioredis
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
from saq import Job, Worker
from saq.job import Status
from saq.queue.redis import RedisQueue
from saq.types import Context, PartialTimersDict
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from videochat.config import MediaSettings, Settings
from videochat.kit.redis_client import connect
from videochat.media.tasks import (
    Outcome,
    VideoProcessor,
    sweep_uploads_forever,
    unfinished_videos,
)
from videochat.observability import metrics
from videochat.observability.metrics import QueueRefresher, RuntimeMetrics
from videochat.realtime.hub import Hub

log = structlog.get_logger(__name__)

JOB_FUNCTION = "process_video"
# How long a sweep waits for the worker of a silent job to confirm it stopped; a dead
# one never answers (the worker's own abort check runs every second).
ABORT_WAIT_SECONDS = 2.0
# Blocking dequeue timeout: shorter than the Redis client's socket timeout.
DEQUEUE_TIMEOUT_SECONDS = 2.0
# Finished jobs are kept this long in Redis (for inspection), then expire.
KEEP_FINISHED_SECONDS = 3600


# A job found in the active list but not yet marked active is one a worker is taking
# (between its two steps) unless it has looked that way this long: its worker died.
CLAIM_GRACE_SECONDS = 15.0

# Takes the sweep period's lock (if free) and reads, in one step, the active list's ids
# and their stored jobs: a job finishing meanwhile cannot be read half-way.
_READ_ACTIVE = """
if redis.call('SET', KEYS[1], 1, 'EX', ARGV[1], 'NX') == false then
    return {}
end
local found = {}
for i, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    found[i] = {id, redis.call('GET', id)}
end
return found
"""


class _Queue(RedisQueue):
    """SAQ's Redis queue with its own sweep (the take-back of abandoned jobs).

    - It runs as often as ``job_sweep_seconds`` says. SAQ's takes a cluster-wide lock that
      it never releases and that expires after 60 s: whatever the workers' timers, a
      silent job was taken back at most once a minute. The lock lives one period here.
    - It leaves alone a job a worker is taking. A worker moves the job to the active list
      (``BLMOVE``), then reads it and marks it active: SAQ's sweep, landing in between,
      took it for abandoned, aborted it under its worker and queued it again
      (tobymao/saq#277; here a transcode cancelled as it began, so a test waiting for it
      to run never saw it). Such a job is taken back only once it has been seen that way
      for ``claim_grace_seconds`` (its worker died between the two steps).
    """

    def __init__(self, redis: aioredis.Redis, *, name: str, sweep_seconds: int) -> None:
        super().__init__(redis, name=name)
        self.sweep_seconds = sweep_seconds
        self.claim_grace_seconds = CLAIM_GRACE_SECONDS
        # job id -> when a sweep first saw it taken and not yet marked (epoch seconds)
        self._being_taken = self.namespace("being_taken")
        self._read_active = self.redis.register_script(_READ_ACTIVE)

    async def sweep(self, lock: int = 60, abort: float = ABORT_WAIT_SECONDS) -> list[str]:
        found = await self._read_active(
            keys=[self.namespace("sweep"), self.namespace("active")],
            args=[max(1, min(lock, self.sweep_seconds))],
        )
        jobs = {job_id: self.deserialize(stored) for job_id, stored in found}
        taken = {job_id for job_id, job in jobs.items() if job and job.status is Status.QUEUED}
        abandoned = await self._abandoned_while_taken(taken)
        swept: list[str] = []
        for job_id, job in jobs.items():
            if job is None:
                await self._forget_missing(job_id)
            elif job_id in taken and job_id not in abandoned:
                continue  # a worker is taking it
            elif job.status is Status.ACTIVE and not job.stuck:
                continue  # running, its heartbeat fresh
            else:
                log.info("video.job_swept", job=job.key, status=job.status.value)
                await self._take_back(job, min(abort, ABORT_WAIT_SECONDS))
            swept.append(job_id.decode())
        return swept

    async def _abandoned_while_taken(self, taken: set[bytes]) -> set[bytes]:
        """Of the jobs taken and not yet marked, those seen so for the whole grace."""
        now = time.time()
        first_seen = await self.redis.hgetall(self._being_taken)
        since = {job_id: float(first_seen.get(job_id, now)) for job_id in taken}
        abandoned = {job_id for job_id, at in since.items() if now - at >= self.claim_grace_seconds}
        async with self.redis.pipeline(transaction=True) as pipe:
            # Only the jobs still in that state are remembered.
            pipe.delete(self._being_taken)
            still: dict[Any, float] = {
                job_id: at for job_id, at in since.items() if job_id not in abandoned
            }
            if still:
                pipe.hset(self._being_taken, mapping=still)
            await pipe.execute()
        return abandoned

    async def _forget_missing(self, job_id: bytes) -> None:
        """An id in the active list whose job expired or was deleted."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(self._active, 0, job_id.decode())
            pipe.zrem(self._incomplete, job_id)
            await pipe.execute()
        log.info("video.job_missing_swept", job_id=job_id.decode())

    async def _take_back(self, job: Job, abort: float) -> None:
        """Stop an abandoned job wherever it may still run, then queue it again."""
        await self.abort(job, error=self.swept_error_message)
        try:
            await job.refresh(abort)  # a live worker confirms it stopped; a dead one never
        except TimeoutError:
            log.info("video.job_abort_unconfirmed", job=job.key)
        if job.retryable:
            await self.retry(job, error=self.swept_error_message)
        else:
            await self.finish(job, Status.ABORTED, error=self.swept_error_message)


async def queue_counts(queue: RedisQueue) -> tuple[int, int]:
    """(waiting, running) jobs of the SAQ queue, across every worker."""
    return await queue.count("queued"), await queue.count("active")


class QueueStats:
    """The SAQ queue's waiting and running jobs, refreshed by a metrics loop."""

    def __init__(self, queue: RedisQueue) -> None:
        self.queue = queue
        self._last: tuple[int, int] = (0, 0)

    def snapshot(self) -> tuple[int, int]:
        return self._last

    async def refresh_stats(self) -> tuple[int, int]:
        self._last = await queue_counts(self.queue)
        return self._last


def serve_metrics(host: str, port: int) -> Any:
    """Expose this process's Prometheus metrics on ``host:port`` (``/metrics``)."""
    registry = REGISTRY
    if metrics.MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("worker.metrics_serving", host=host, port=server.server_port)
    return server


class RetryLater(Exception):
    """A job that crashed with attempts left: SAQ runs it again after the retry delay."""


def create_queue(settings: Settings) -> RedisQueue:
    """The SAQ queue of video jobs on the configured Redis."""
    if not settings.redis.url:
        raise RuntimeError("the Redis job queue needs VIDEOCHAT_REDIS__URL")
    # Fails fast while Redis is away (an upload's enqueue must not hang on retries) and
    # heals once it is back; the socket timeout outlasts the blocking dequeue.
    client: aioredis.Redis = connect(settings.redis.url, socket_timeout=DEQUEUE_TIMEOUT_SECONDS * 3)
    media = settings.media
    return _Queue(client, name=media.job_queue_name, sweep_seconds=media.job_sweep_seconds)


async def enqueue_video(queue: RedisQueue, media: MediaSettings, video_id: str) -> bool:
    """Queue one video's job; False when a job for it is already pending."""
    job = await queue.enqueue(
        JOB_FUNCTION,
        key=video_id,
        video_id=video_id,
        timeout=0,  # a long video legitimately encodes for long: liveness is the heartbeat
        heartbeat=media.job_heartbeat_seconds,
        # The database decides when a video has been tried enough (job_max_attempts);
        # SAQ's own count only has to outlast it, kills and retries included.
        retries=media.job_max_attempts + 2,
        retry_delay=media.job_retry_delay_seconds,
        ttl=KEEP_FINISHED_SECONDS,
    )
    return job is not None


class RedisJobQueue:
    """The API side: hands committed videos to ``videochat worker`` processes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._queue: RedisQueue | None = None
        # The same readings the worker keeps (QueueStats), kept after stop() like theirs.
        self._stats: QueueStats | None = None

    @property
    def running(self) -> bool:
        return self._queue is not None

    def snapshot(self) -> tuple[int, int]:
        """(waiting, running) jobs in Redis at the last refresh_stats()."""
        return self._stats.snapshot() if self._stats is not None else (0, 0)

    async def refresh_stats(self) -> tuple[int, int]:
        if self._queue is None or self._stats is None:
            raise RuntimeError("the video job queue is not running")
        return await self._stats.refresh_stats()

    async def stats(self) -> dict[str, int | str]:
        queued, running = await self.refresh_stats()
        return {"backend": "redis", "queued": queued, "running": running}

    async def readiness(self) -> dict[str, Any]:
        if not self.running:
            return {"status": "unhealthy", "error": "stopped"}
        # Waiting and running jobs of every SAQ worker, read from Redis now.
        return {"status": "healthy"} | (await self.stats())

    async def start(self) -> None:
        self._queue = create_queue(self.settings)
        await self._queue.connect()
        self._stats = QueueStats(self._queue)

    async def stop(self) -> None:
        if self._queue is not None:
            await self._queue.disconnect()
            self._queue = None

    async def enqueue(self, video_id: str) -> None:
        """Queue a committed video; if Redis is down, a worker's re-check queues it later.

        The upload itself succeeded (its bytes and its ``uploaded`` status are stored),
        so it is not refused: the database is the queue's source of truth, and every
        worker re-queues ``uploaded`` videos that have no job (``job_recheck_seconds``).
        """
        if self._queue is None:
            raise RuntimeError("the video job queue is not running")
        try:
            await enqueue_video(self._queue, self.settings.media, video_id)
        except Exception as exc:
            log.warning("video.enqueue_deferred", video_id=video_id, error=str(exc))
            metrics.REDIS_OUTAGES.labels(part="jobs").inc()


async def requeue_unfinished(
    sessionmaker: async_sessionmaker[AsyncSession], media: MediaSettings, queue: RedisQueue
) -> int:
    """Queue every ``uploaded``/``processing`` video that has no pending job; how many."""
    queued = 0
    for video_id in await unfinished_videos(sessionmaker):
        if await enqueue_video(queue, media, video_id):
            queued += 1
    if queued:
        log.info("video.jobs_recovered", count=queued)
    return queued


async def _heartbeat(job: Job, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await job.update()  # refreshes the job's "touched" time
        except Exception as exc:  # Redis hiccup: the next beat may get through
            log.warning("video.heartbeat_failed", job=job.key, error=repr(exc))


class VideoWorker:
    """A ``videochat worker`` process: runs video jobs from Redis until SIGINT/SIGTERM.

    Given what ``videochat.runtime.open_worker`` opened (the database and a hub on the
    API's Redis pub/sub, so rooms hear "processing" and "ready" from here) and closes.
    """

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: Hub,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.hub = hub

    async def run(self) -> None:
        settings, sessionmaker = self.settings, self.sessionmaker
        media = settings.media
        processor = VideoProcessor(settings, sessionmaker, self.hub)
        await processor.prepare()
        queue = create_queue(settings)
        beat_every = max(0.5, media.job_heartbeat_seconds / 4)

        async def process_video(ctx: Context, *, video_id: str) -> str:
            beat = asyncio.create_task(_heartbeat(ctx["job"], beat_every))
            try:
                outcome = await processor.process(video_id)
            finally:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
            if outcome is Outcome.RETRY:
                raise RetryLater(video_id)
            return str(outcome.value)

        async def recheck(_: Context) -> None:
            with contextlib.suppress(Exception):
                await requeue_unfinished(sessionmaker, media, queue)

            async def every() -> None:
                while True:
                    await asyncio.sleep(media.job_recheck_seconds)
                    try:
                        await requeue_unfinished(sessionmaker, media, queue)
                    except Exception:
                        log.exception("video.recheck_failed")

            rechecks.append(asyncio.create_task(every(), name="video-recheck"))
            # With Redis the API runs no jobs: its workers sweep abandoned uploads.
            sweep = sweep_uploads_forever(settings, sessionmaker, self.hub)
            rechecks.append(asyncio.create_task(sweep, name="video-upload-sweep"))

        rechecks: list[asyncio.Task[None]] = []
        functions: Any = [(JOB_FUNCTION, process_video)]
        timers: PartialTimersDict = {
            "sweep": media.job_sweep_seconds,
            "abort": 1,
            "schedule": 1,
            "worker_info": 10,
        }
        worker = Worker(
            queue,
            functions,
            concurrency=media.job_concurrency,
            startup=recheck,
            timers=timers,
            dequeue_timeout=DEQUEUE_TIMEOUT_SECONDS,
            shutdown_grace_period_s=None,
            # Cancelled jobs first stop their transcode thread (at its next progress report).
            cancellation_hard_deadline_s=10.0,
        )
        observability = settings.observability
        metrics_server = (
            serve_metrics(observability.worker_metrics_host, observability.worker_metrics_port)
            if observability.worker_metrics_port
            else None
        )
        stats = QueueStats(queue)
        runtime = RuntimeMetrics(self.engine, stats)
        refresher = QueueRefresher(stats, every=1.0)
        log.info(
            "worker.started",
            queue=media.job_queue_name,
            concurrency=media.job_concurrency,
            database=self.engine.dialect.name,
        )
        try:
            await queue.connect()
            await runtime.start()
            await refresher.start()
            await worker.start()  # returns on SIGINT/SIGTERM
        finally:
            await refresher.stop()
            await runtime.stop()
            if metrics_server is not None:
                metrics_server.shutdown()
            processor.request_stop()
            await processor.wait_running()
            for task in rechecks:
                task.cancel()
            await asyncio.gather(*rechecks, return_exceptions=True)
            processor.shutdown()
            await queue.disconnect()
            log.info("worker.stopped")
