"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from videochat import __version__
from videochat.accounts.endpoints import router as accounts_router
from videochat.calls import socket as calls_socket
from videochat.calls.endpoints import router as calls_router
from videochat.chat import socket as chat_socket
from videochat.chat.endpoints import router as chat_router
from videochat.config import Settings, get_settings, with_signing_secret
from videochat.context import attach_context
from videochat.exceptions import install_exception_handlers
from videochat.live.endpoints import router as live_router
from videochat.media.endpoints import router as media_router
from videochat.media.tus import TUS_RESPONSE_HEADERS
from videochat.observability import metrics
from videochat.observability.endpoints import router as service_router
from videochat.observability.logging import configure_logging
from videochat.observability.middleware import RequestContextMiddleware
from videochat.realtime.gateway import Gateway
from videochat.realtime.routing import FrameRouter
from videochat.rooms.admission import admit, confirm
from videochat.rooms.endpoints import router as rooms_router
from videochat.rooms.lobby.endpoints import router as lobby_router
from videochat.rooms.moderation.endpoints import router as moderation_router
from videochat.runtime import open_context
from videochat.security.body import BodyLimitMiddleware
from videochat.security.headers import (
    SecurityHeadersMiddleware,
    content_security_policy,
    hsts_header,
)
from videochat.security.hosts import HostCheckMiddleware
from videochat.security.ratelimit import Limiter, RateLimitMiddleware
from videochat.sfu.endpoints import router as sfu_router
from videochat.web.docs import install_api_docs
from videochat.web.endpoints import STATIC_DIR
from videochat.web.endpoints import router as web_router


def _create_gateway() -> Gateway:
    """The room socket, with each domain's part: admission, replay and frame handlers."""
    frames = FrameRouter()
    frames.include_router(chat_socket.router)
    frames.include_router(calls_socket.router)
    return Gateway(admit=admit, confirm=confirm, replay=chat_socket.replay, handlers=frames)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; everything it needs comes from ``settings``."""
    settings = with_signing_secret(settings or get_settings())
    configure_logging(settings)
    metrics.ENABLED = settings.observability.metrics_enabled
    # Made now: the rate-limit middleware below needs its strategy before the lifespan.
    limiter = Limiter(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_context(settings, limiter=limiter) as context:
            attach_context(app, context)
            try:
                yield
            finally:
                attach_context(app, None)

    app = FastAPI(
        title="videochat",
        version=__version__,
        description="Self-hosted video chat: rooms, chat, WebRTC calls, videos, live streams.",
        lifespan=lifespan,
        # Off in production unless asked for: they map the whole API for strangers.
        # The pages are web.docs's (assets from the app, not a CDN), not FastAPI's.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs else None,
    )
    if app.openapi_url is not None:
        install_api_docs(app, openapi_url=app.openapi_url)
    install_exception_handlers(app)
    app.add_middleware(RateLimitMiddleware, settings=settings, strategy=limiter.strategy)
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(
        SecurityHeadersMiddleware,
        hsts=hsts_header(settings),
        csp=content_security_policy(settings),
    )
    if settings.cors_origins:
        # Outside the limits: a 429 or 413 a browser cannot read is a bare network error
        # to a front end on another origin, and preflights are not requests to count.
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
                "Retry-After",
                # GET /rooms: where the next page is.
                "Link",
                "X-Next-Cursor",
                # tus clients in a browser (tus-js-client) read offsets and lengths.
                *TUS_RESPONSE_HEADERS,
            ],
        )
    if settings.http.allowed_hosts != ["*"]:
        # Outermost but for the request context: a forged Host never reaches a route.
        app.add_middleware(HostCheckMiddleware, allowed_hosts=settings.http.allowed_hosts)
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
        sfu_router,
        media_router,
        live_router,
    ):
        app.include_router(router)
    app.router.routes.append(_create_gateway().route())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
