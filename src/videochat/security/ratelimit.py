"""HTTP rate limits per client IP with ``limits`` (in memory, or Redis when configured)."""

from __future__ import annotations

import json
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videochat.config import Settings

# Never limited: load-balancer probes, the web client's files, Prometheus scrapes.
EXEMPT_PREFIXES = ("/health", "/static/", "/metrics/prometheus", "/favicon.ico")
# Never limited when read (GET, HEAD): HLS playlists and segments, live and stored.
# A player re-reads a live playlist every segment (~2 s) and fetches each segment, so a
# viewer alone would pass 100 requests a minute. These reads are authorised by the
# playback ID or token in the URL and served from files, not the database.
MEDIA_PREFIXES = ("/live/", "/media/videos/")
_READS = frozenset({"GET", "HEAD"})


def create_storage(settings: Settings) -> Storage:
    """Counters shared by every instance when Redis is configured, else in memory."""
    if settings.redis.url:
        # redis-py (already a dependency) rather than limits' default coredis.
        storage = storage_from_string(
            "async+" + settings.redis.url, implementation="redispy", key_prefix="videochat"
        )
        assert isinstance(storage, Storage)
        return storage
    return MemoryStorage()


def client_ip(scope: Scope) -> str:
    """The peer address (uvicorn already applied trusted proxy headers)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Count each request against its IP; 429 with ``Retry-After`` past the limit."""

    def __init__(self, app: ASGIApp, settings: Settings, strategy: MovingWindowRateLimiter) -> None:
        self.app = app
        self.enabled = settings.rate_limit.enabled
        self.exempt_media = settings.rate_limit.exempt_media
        self.item = RateLimitItemPerSecond(
            settings.rate_limit.requests, settings.rate_limit.window_seconds
        )
        # The app's one limiter storage (one Redis pool), shared with login and sockets.
        self.limiter = strategy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            not self.enabled
            or scope["type"] != "http"
            or scope.get("method") == "OPTIONS"
            or path.startswith(EXEMPT_PREFIXES)
            or (
                self.exempt_media
                and scope.get("method") in _READS
                and path.startswith(MEDIA_PREFIXES)
            )
        ):
            await self.app(scope, receive, send)
            return
        key = client_ip(scope)
        allowed = await self.limiter.hit(self.item, "http", key)
        stats = await self.limiter.get_window_stats(self.item, "http", key)
        headers = [
            (b"x-ratelimit-limit", str(self.item.amount).encode()),
            (b"x-ratelimit-remaining", str(max(0, stats.remaining)).encode()),
        ]
        if not allowed:
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            detail = (
                f"Too many requests: the limit is {self.item.amount} per "
                f"{int(self.item.get_expiry())} s; retry in {retry_after} s"
            )
            body = json.dumps({"detail": detail}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"retry-after", str(retry_after).encode()),
                        *headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
