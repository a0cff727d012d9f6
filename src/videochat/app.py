"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.staticfiles import StaticFiles

from videochat import __version__
from videochat.accounts.endpoints import router as accounts_router
from videochat.calls import socket as calls_socket
from videochat.calls.endpoints import router as calls_router
from videochat.chat import socket as chat_socket
from videochat.chat.endpoints import router as chat_router
from videochat.chat.frames import message_frame
from videochat.chat.writer import MessageWriter
from videochat.config import AuthMode, Settings, get_settings
from videochat.context import AppContext
from videochat.db.engine import create_engine, create_sessionmaker
from videochat.db.migrate import upgrade_to_head
from videochat.exceptions import install_exception_handlers
from videochat.kit.cache import create_cache
from videochat.live.endpoints import router as live_router
from videochat.live.ingest import LiveManager
from videochat.media.endpoints import router as media_router
from videochat.media.tasks import create_job_queue
from videochat.observability import metrics
from videochat.observability.endpoints import router as service_router
from videochat.observability.logging import configure_logging
from videochat.observability.metrics import QueueRefresher, RuntimeMetrics
from videochat.observability.middleware import RequestContextMiddleware
from videochat.realtime.broker import Broker, MemoryBroker
from videochat.realtime.gateway import Gateway
from videochat.realtime.hub import Hub
from videochat.realtime.presence import MemoryPresence, Presence, RedisPresence
from videochat.realtime.routing import FrameRouter
from videochat.rooms.admission import admit
from videochat.rooms.endpoints import router as rooms_router
from videochat.rooms.lobby_endpoints import router as lobby_router
from videochat.rooms.moderation_endpoints import router as moderation_router
from videochat.security.body import BodyLimitMiddleware
from videochat.security.headers import SecurityHeadersMiddleware
from videochat.security.limiter import Limiter
from videochat.security.ratelimit import RateLimitMiddleware
from videochat.web.endpoints import STATIC_DIR
from videochat.web.endpoints import router as web_router

log = structlog.get_logger(__name__)


def _create_realtime(settings: Settings) -> tuple[Broker, Presence]:
    if settings.redis.url:
        from videochat.realtime.redis_broker import RedisBroker

        return RedisBroker(settings.redis.url), RedisPresence(settings.redis.url)
    return MemoryBroker(), MemoryPresence()


def _create_gateway() -> Gateway:
    """The room socket, with each domain's part: admission, replay and frame handlers."""
    frames = FrameRouter()
    frames.include_router(chat_socket.router)
    frames.include_router(calls_socket.router)
    return Gateway(admit=admit, replay=chat_socket.replay, handlers=frames)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; everything it needs comes from ``settings``."""
    settings = settings or get_settings()
    configure_logging(settings)
    metrics.ENABLED = settings.observability.metrics_enabled

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        if settings.database.auto_migrate:
            await upgrade_to_head(engine)
        cache = create_cache(
            enabled=settings.cache.enabled,
            redis_url=settings.redis.url,
            ttl=settings.cache.ttl_seconds,
            max_entries=settings.cache.max_entries,
        )
        broker, presence = _create_realtime(settings)
        await broker.start()
        await presence.start()
        context = AppContext(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine, cache=cache),
            cache=cache,
            hub=Hub(broker, presence),
        )
        app.state.context = context
        app.state.chat_writer = MessageWriter(
            engine, context.hub.publish_many, message_frame, cluster=bool(settings.redis.url)
        )
        app.state.video_jobs = create_job_queue(context)
        await app.state.video_jobs.start()
        app.state.runtime_metrics = RuntimeMetrics(engine, app.state.video_jobs)
        await app.state.runtime_metrics.start()
        app.state.queue_refresher = QueueRefresher(app.state.video_jobs)
        await app.state.queue_refresher.start()
        app.state.live = LiveManager(context)
        await app.state.live.start()
        if settings.auth_mode is AuthMode.OPEN:
            log.warning("auth.open_mode", detail="identity is taken from paths and bodies")
        log.info(
            "app.started",
            version=__version__,
            environment=settings.environment.value,
            database=engine.dialect.name,
            broker="redis" if settings.redis.url else "memory",
            cache=type(cache).__name__,
        )
        try:
            yield
        finally:
            # Before the jobs and the broker: ending a stream archives it and tells the room.
            await app.state.live.stop()
            await app.state.queue_refresher.stop()
            await app.state.runtime_metrics.stop()
            await app.state.video_jobs.stop()
            await app.state.chat_writer.stop()
            await context.hub.close_all()
            await presence.stop()
            await broker.stop()
            await cache.close()
            await engine.dispose()
            log.info("app.stopped")

    app = FastAPI(
        title="videochat",
        version=__version__,
        description="Self-hosted video chat: rooms, chat, WebRTC calls, videos, live streams.",
        lifespan=lifespan,
    )
    install_exception_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "Location",
                "X-Request-Id",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
            ],
        )
    app.state.limiter = Limiter(settings)
    app.add_middleware(RateLimitMiddleware, settings=settings, strategy=app.state.limiter.strategy)
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.http.allowed_hosts != ["*"]:
        # Outermost but for the request context: a forged Host never reaches a route.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.http.allowed_hosts)
    # Added last, so it runs first: request ids and metrics cover 429s too.
    app.add_middleware(
        RequestContextMiddleware,
        metrics_enabled=settings.observability.metrics_enabled,
        request_logs=settings.observability.request_logs,
    )

    for router in (
        service_router,
        web_router,
        accounts_router,
        rooms_router,
        moderation_router,
        lobby_router,
        chat_router,
        calls_router,
        media_router,
        live_router,
    ):
        app.include_router(router)
    app.router.routes.append(_create_gateway().route())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
