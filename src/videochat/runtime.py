"""The composition root: opens the ``AppContext`` and closes it, part by part.

Every part is started inside one ``AsyncExitStack`` and its stop is registered
*before* it starts, so a start-up that fails half-way (Redis unreachable, a
migration that fails) stops what it had started, in reverse order, and disposes
the engine. The app's lifespan, ``videochat worker`` and the CLI open their parts
here: the app the whole context (``open_context``), the worker a subset
(``open_worker``: database and broker). The CLI's ``migrate``, ``create-admin`` and
``check`` need only the database: ``db.lifecycle.open_database``, kept out of this
module so that they do not import (and start the metrics of) the whole app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Protocol

import structlog

from videochat import __version__
from videochat.accounts import repository as accounts_repository
from videochat.chat import repository as chat_repository
from videochat.chat import socket as chat_socket
from videochat.chat.frames import message_frame
from videochat.chat.writer import MessageWriter
from videochat.config import AuthMode, Settings
from videochat.context import AppContext
from videochat.db.engine import create_sessionmaker
from videochat.db.lifecycle import enter_engine
from videochat.db.migrate import upgrade_to_head
from videochat.kit.cache import create_cache
from videochat.live import consequences as live_consequences
from videochat.live.ingest import LiveManager
from videochat.media import consequences as media_consequences
from videochat.media import service as media_service
from videochat.media.tasks import InProcessJobRunner, JobQueue
from videochat.media.worker import RedisJobQueue, VideoWorker
from videochat.observability import metrics
from videochat.observability.health import HealthSources
from videochat.observability.metrics import QueueRefresher, RuntimeMetrics
from videochat.realtime.broker import Broker, MemoryBroker
from videochat.realtime.hub import Hub
from videochat.realtime.presence import MemoryPresence, Presence, RedisPresence
from videochat.realtime.redis_broker import RedisBroker
from videochat.rooms import repository as rooms_repository
from videochat.security.ratelimit import Limiter
from videochat.sfu import consequences as sfu_consequences
from videochat.sfu.manager import SfuManager
from videochat.sfu.mode import CallModes

log = structlog.get_logger(__name__)


class _Part(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def _start(stack: AsyncExitStack, part: _Part) -> None:
    # The stop goes on the stack first: a part whose start fails half-way (a Redis
    # client made, its ping refused) is stopped too. Every part's stop allows that.
    stack.push_async_callback(part.stop)
    await part.start()


async def _enter_hub(stack: AsyncExitStack, settings: Settings, *, presence: bool) -> Hub:
    broker: Broker
    shared: Presence
    if settings.redis.url:
        broker, shared = RedisBroker(settings.redis.url), RedisPresence(settings.redis.url)
    else:
        broker, shared = MemoryBroker(), MemoryPresence()
    await _start(stack, broker)
    if presence:
        await _start(stack, shared)
    hub = Hub(
        broker,
        shared if presence else None,
        presence_interval=settings.realtime.presence_interval_seconds,
    )
    stack.push_async_callback(hub.close_all)
    return hub


def _health_sources(settings: Settings, jobs: JobQueue) -> HealthSources:
    """What /health counts and what /health/ready asks, in the order they are shown."""
    return HealthSources(
        totals={
            "total_messages": chat_repository.count_messages,
            "total_rooms": rooms_repository.count_rooms,
            "total_users": accounts_repository.count_users,
        },
        readiness={"job_queue": jobs.readiness},
        totals_ttl_seconds=settings.observability.health_stats_ttl_seconds,
    )


@asynccontextmanager
async def open_context(
    settings: Settings, *, limiter: Limiter | None = None
) -> AsyncIterator[AppContext]:
    """Start every part of the app, yield the context, stop them all in reverse order.

    ``limiter`` is the one the app's rate-limit middleware was built with (middleware
    is added before the lifespan runs); a fresh one otherwise.
    """
    async with AsyncExitStack() as stack:
        stack.callback(log.info, "app.stopped")  # runs last: everything else is stopped
        engine = enter_engine(stack, settings)
        if settings.database.auto_migrate:
            await upgrade_to_head(engine)
        cache = create_cache(
            enabled=settings.cache.enabled,
            redis_url=settings.redis.url,
            ttl=settings.cache.ttl_seconds,
            max_entries=settings.cache.max_entries,
            on_lookup=metrics.count_cache_lookup,
            on_outage=metrics.redis_degraded,
        )
        stack.push_async_callback(cache.close)
        hub = await _enter_hub(stack, settings, presence=True)
        sessionmaker = create_sessionmaker(engine, cache=cache)
        # After a broker outage, sockets get the messages they missed from the database.
        hub.catch_up = partial(chat_socket.catch_up, sessionmaker)
        chat_writer = MessageWriter(
            engine, hub.publish_many, message_frame, cluster=bool(settings.redis.url)
        )
        stack.push_async_callback(chat_writer.stop)
        video_jobs: JobQueue = (
            RedisJobQueue(settings)
            if settings.redis.url
            else InProcessJobRunner(settings, sessionmaker, hub)
        )
        await _start(stack, video_jobs)
        await _start(stack, RuntimeMetrics(engine, video_jobs))
        await _start(stack, QueueRefresher(video_jobs))
        live = LiveManager(settings, sessionmaker, hub)
        # Stopped first: ending a stream archives it and tells the room (jobs, broker).
        await _start(stack, live)
        sfu = (
            SfuManager(
                settings.sfu,
                sessionmaker,
                hub,
                video_jobs,
                # A recording's video counts in its starter's storage quota.
                storage_left=lambda session, user_id: media_service.storage_left(
                    session, settings, user_id
                ),
            )
            if settings.sfu.enabled
            else None
        )
        if sfu is not None:
            await _start(stack, sfu)
            # Every participant list says whether the room's call is mesh or SFU.
            hub.call_mode = CallModes(sessionmaker, sfu.pool, video_jobs, hub)
        context = AppContext(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            cache=cache,
            hub=hub,
            limiter=limiter or Limiter(settings),
            chat_writer=chat_writer,
            video_jobs=video_jobs,
            live=live,
            health=_health_sources(settings, video_jobs),
            moderation_hooks={
                "ban": [
                    media_consequences.withdraw_uploads,
                    live_consequences.end_streams("banned", keep_recording=False),
                    sfu_consequences.remove_from_call,
                ],
                "kick": [
                    live_consequences.end_streams("kicked", keep_recording=True),
                    sfu_consequences.remove_from_call,
                ],
                "mute": [
                    live_consequences.end_streams("muted", keep_recording=True),
                    sfu_consequences.mute_in_call,
                ],
            },
            sfu=sfu,
        )
        if settings.auth_mode is AuthMode.OPEN:
            log.warning("auth.open_mode", detail="identity is taken from paths and bodies")
        log.info(
            "app.started",
            version=__version__,
            environment=settings.environment.value,
            database=engine.dialect.name,
            broker="redis" if settings.redis.url else "memory",
            cache=type(cache).__name__,
            sfu_instances=len(settings.sfu.janus_urls),
        )
        yield context


@asynccontextmanager
async def open_worker(settings: Settings) -> AsyncIterator[VideoWorker]:
    """``videochat worker``'s subset: the database and a hub on the API's Redis pub/sub.

    No cache, presence, sockets, chat writer or live ingest: the worker only runs video
    jobs and tells the rooms how they went.
    """
    if not settings.redis.url:
        raise RuntimeError("the video worker needs VIDEOCHAT_REDIS__URL")
    async with AsyncExitStack() as stack:
        engine = enter_engine(stack, settings)
        hub = await _enter_hub(stack, settings, presence=False)
        yield VideoWorker(settings, engine, create_sessionmaker(engine), hub)


async def run_worker(settings: Settings) -> None:
    """Entry point of ``videochat worker``: run jobs until SIGINT/SIGTERM."""
    async with open_worker(settings) as worker:
        await worker.run()
