"""Prometheus metrics, and the prototype's JSON summary computed from them.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``videochat serve --workers N`` sets it), every
worker writes its values to files in that folder and a scrape answered by any one
worker adds up all of them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

# prometheus_client picks its value storage when it is imported, from the same variable.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# How often each worker writes its pool and queue readings in multiprocess mode.
SAMPLE_SECONDS = 5.0

# False turns off the hot-path metrics (HTTP middleware, socket frames): settings'
# ``observability.metrics_enabled``, for measuring what they cost.
ENABLED = True

HTTP_REQUESTS = Counter(
    "videochat_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "videochat_http_request_duration_seconds", "HTTP request duration", ["method", "route"]
)
WS_ACTIVE = Gauge(
    "videochat_websocket_connections_active",
    "Open WebSocket connections",
    multiprocess_mode="livesum",
)
WS_OPENED = Counter("videochat_websocket_connections_opened_total", "WebSockets accepted")
WS_CLOSED = Counter(
    "videochat_websocket_connections_closed_total",
    "WebSockets closed, by reason (normal, slow_consumer, rate_limited, too_big, "
    "server_shutdown, error)",
    ["reason"],
)
WS_FRAMES_IN = Counter("videochat_websocket_frames_received_total", "Frames from clients")
WS_FRAMES_OUT = Counter("videochat_websocket_frames_sent_total", "Frames to clients")
WS_SLOW_CONSUMERS = Counter(
    "videochat_websocket_slow_consumers_total", "Connections cut off for not keeping up"
)
CHAT_MESSAGES = Counter("videochat_chat_messages_total", "Chat messages stored")
CHAT_WRITE_BATCH = Histogram(
    "videochat_chat_write_batch_messages",
    "Messages stored per commit (group commit: grows with load)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)
USERS_CREATED = Counter("videochat_users_created_total", "Accounts created (guests included)")
ROOMS_CREATED = Counter("videochat_rooms_created_total", "Rooms created")
LIVE_STREAMS_CREATED = Counter("videochat_live_streams_created_total", "Live streams created")
VIDEOS_UPLOADED = Counter("videochat_videos_uploaded_total", "Videos uploaded")
VIDEOS_PROCESSED = Counter(
    "videochat_videos_processed_total", "Videos processed, by outcome (ready, failed)", ["outcome"]
)
VIDEO_PROCESSING_SECONDS = Histogram(
    "videochat_video_processing_duration_seconds",
    "Time to probe and transcode one video, by outcome",
    ["outcome"],
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600),
)
CACHE_HITS = Counter(
    "videochat_cache_hits_total", "Cached reads answered from the cache", ["namespace"]
)
CACHE_MISSES = Counter(
    "videochat_cache_misses_total", "Cached reads that went to the database", ["namespace"]
)
# Each part that uses Redis says when it works without it (rate_limit, cache, broker,
# presence, jobs): one gauge per part while degraded, one count per outage it saw.
REDIS_DEGRADED = Gauge(
    "videochat_redis_degraded",
    "1 while a part works without Redis (rate limits in process, local delivery, ...)",
    ["part"],
    multiprocess_mode="livemax",
)
REDIS_OUTAGES = Counter(
    "videochat_redis_outages_total", "Times a part lost Redis and fell back", ["part"]
)
JOBS_RUNNING_DOC = "Video jobs running now (this process's runner, or every SAQ worker)"


def frames_sent(count: int) -> None:
    """Count frames written to sockets: a broadcast counts its sends once (the counter
    takes a lock per call, which was a few per cent of a busy server's CPU per socket)."""
    if count and ENABLED:
        WS_FRAMES_OUT.inc(count)


def count_cache_lookup(namespace: str, hit: bool) -> None:
    """kit.cache's lookup hook: a hit or a miss of one namespace."""
    (CACHE_HITS if hit else CACHE_MISSES).labels(namespace=namespace).inc()


def redis_degraded(part: str, degraded: bool) -> None:
    """A part lost Redis (and fell back) or got it back."""
    REDIS_DEGRADED.labels(part=part).set(1 if degraded else 0)
    if degraded:
        REDIS_OUTAGES.labels(part=part).inc()


def time_processing() -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback for a transcode's future that observes how long it ran, by outcome."""
    started = time.monotonic()

    def observe(future: asyncio.Future[Any]) -> None:
        # Abandoned at shutdown (cancelled, or stopped by its progress callback): no outcome.
        if future.cancelled() or type(future.exception()).__name__ == "_Stopping":
            return
        outcome = "ready" if future.exception() is None else "failed"
        VIDEO_PROCESSING_SECONDS.labels(outcome=outcome).observe(time.monotonic() - started)

    return observe


# Read at scrape time from the running apps (see RuntimeCollector).
_RUNTIME_GAUGES = {
    "videochat_db_pool_size": "Connections the database pool keeps",
    "videochat_db_pool_checked_out": "Database connections in use",
    "videochat_db_pool_checked_in": "Idle database connections in the pool",
    "videochat_db_pool_overflow": "Database connections open beyond the pool size",
    "videochat_job_queue_depth": "Video jobs waiting (this process's queue, or SAQ's in Redis)",
    "videochat_jobs_running": JOBS_RUNNING_DOC,
}


def pool_stats(engine: AsyncEngine) -> dict[str, float]:
    """The engine's pool counters (pools without a fixed size, such as StaticPool, have none)."""
    pool = engine.pool
    stats: dict[str, float] = {}
    for name, method in (
        ("videochat_db_pool_size", "size"),
        ("videochat_db_pool_checked_out", "checkedout"),
        ("videochat_db_pool_checked_in", "checkedin"),
        ("videochat_db_pool_overflow", "overflow"),
    ):
        read = getattr(pool, method, None)
        if callable(read):
            # QueuePool counts overflow from -size up; only connections past the size matter.
            stats[name] = max(0.0, float(read()))
    return stats


def queue_stats(jobs: object) -> tuple[int, int] | None:
    """(waiting, running) of a job queue from its last reading, without I/O."""
    snapshot = getattr(jobs, "snapshot", None)
    if callable(snapshot) and not inspect.iscoroutinefunction(snapshot):
        value = snapshot()
        if isinstance(value, tuple) and len(value) == 2:
            return int(value[0]), int(value[1])
    return None


@dataclass(eq=False)
class RuntimeSource:
    """What one running app shows at scrape time: its database pool and job queue."""

    engine: AsyncEngine
    jobs: object | None = None

    def read(self) -> dict[str, float]:
        values = pool_stats(self.engine)
        stats = queue_stats(self.jobs) if self.jobs is not None else None
        if stats is not None:
            values["videochat_job_queue_depth"] = float(stats[0])
            values["videochat_jobs_running"] = float(stats[1])
        return values


class RuntimeCollector(Collector):
    """Gauges computed when scraped, summed over the apps running in this process."""

    def __init__(self) -> None:
        self.sources: list[RuntimeSource] = []

    def read(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for source in list(self.sources):
            for name, value in source.read().items():
                totals[name] = totals.get(name, 0.0) + value
        return totals

    def collect(self) -> Iterable[Metric]:
        for name, value in self.read().items():
            yield GaugeMetricFamily(name, _RUNTIME_GAUGES[name], value=value)


RUNTIME = RuntimeCollector()
_SAMPLED: dict[str, Gauge] = {}
if MULTIPROCESS:
    # A scrape reaches one worker: each writes its readings where the others can add them.
    _SAMPLED.update(
        (name, Gauge(name, doc, registry=None, multiprocess_mode="livesum"))
        for name, doc in _RUNTIME_GAUGES.items()
    )
else:
    REGISTRY.register(RUNTIME)


def _sample() -> None:
    for name, value in RUNTIME.read().items():
        _SAMPLED[name].set(value)


class RuntimeMetrics:
    """Puts one app's pool and job queue on the scrape for as long as it runs."""

    def __init__(self, engine: AsyncEngine, jobs: object | None) -> None:
        self.source = RuntimeSource(engine, jobs)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        RUNTIME.sources.append(self.source)
        if MULTIPROCESS:
            self._task = asyncio.create_task(self._sample_forever(), name="metrics-sampler")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            RUNTIME.sources.remove(self.source)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if MULTIPROCESS:
            # Drops this worker's "live" gauges (open sockets, pool) from the sums.
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    async def _sample_forever(self) -> None:
        while True:
            _sample()
            await asyncio.sleep(SAMPLE_SECONDS)


class QueueRefresher:
    """Keeps a job queue's readings fresh when reading them costs I/O (SAQ in Redis)."""

    def __init__(self, jobs: object, every: float = SAMPLE_SECONDS) -> None:
        self.jobs = jobs
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        refresh = getattr(self.jobs, "refresh_stats", None)
        if callable(refresh):
            self._task = asyncio.create_task(self._loop(refresh), name="job-queue-stats")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self, refresh: Callable[[], Any]) -> None:
        while True:
            with contextlib.suppress(Exception):
                await refresh()
            await asyncio.sleep(self.every)


def _families() -> list[Metric]:
    if MULTIPROCESS:
        _sample()  # this worker's readings are fresh; the others are SAMPLE_SECONDS old at most
        collector = MultiProcessCollector(None)  # type: ignore[no-untyped-call]
        return list(collector.collect())  # type: ignore[no-untyped-call]
    return list(REGISTRY.collect())


def exposition(accept: str | None = None) -> tuple[bytes, str]:
    """The metrics (every worker's when there are several) and their content type.

    The classic text format 0.0.4 unless ``accept`` asks for OpenMetrics or text 1.0.0:
    prometheus_client's own negotiation, the same the workers' metrics server does, so
    the content type always names the format of the body.
    """
    encode, content_type = choose_encoder(accept or "")
    registry: Collector = REGISTRY
    if MULTIPROCESS:
        _sample()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return encode(registry), content_type


def _sum(families: list[Metric], sample_name: str, **match: str) -> float:
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == sample_name
        and all(sample.labels.get(key) == value for key, value in match.items())
    )


def summary() -> dict[str, Any]:
    """The prototype's ``/metrics`` JSON, from the live counters (of every worker)."""
    families = _families()
    requests = "videochat_http_requests_total"
    total = _sum(families, requests)
    failed = sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == requests and int(sample.labels.get("status", "0")) >= 400
    )
    seconds = _sum(families, "videochat_http_request_duration_seconds_sum")
    count = _sum(families, "videochat_http_request_duration_seconds_count")
    return {
        "requests": {
            "total": int(total),
            "successful": int(total - failed),
            "failed": int(failed),
            "success_rate": round((total - failed) / total * 100, 2) if total else 100.0,
            "average_duration_ms": round(seconds / count * 1000, 3) if count else 0.0,
        },
        "websocket": {
            "active_connections": int(_sum(families, "videochat_websocket_connections_active")),
            "total_connections": int(
                _sum(families, "videochat_websocket_connections_opened_total")
            ),
            "messages_sent": int(_sum(families, "videochat_websocket_frames_sent_total")),
            "messages_received": int(_sum(families, "videochat_websocket_frames_received_total")),
        },
        "video": {
            "live_streams_created": int(_sum(families, "videochat_live_streams_created_total")),
            "videos_uploaded": int(_sum(families, "videochat_videos_uploaded_total")),
            "videos_processed": int(_sum(families, "videochat_videos_processed_total")),
        },
        "chat": {"messages": int(_sum(families, "videochat_chat_messages_total"))},
    }
