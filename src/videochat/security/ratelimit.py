"""Rate limits over one ``limits`` storage (in memory, or Redis when configured).

``Limiter`` holds the named limits a route or the socket handshake enforces itself
(logins, knocks, socket connects); ``RateLimitMiddleware`` counts every HTTP request
per client IP, and writes per user too.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videochat.config import Settings
from videochat.exceptions import TooManyRequests
from videochat.security.identity import verified_subject
from videochat.security.responses import UPLOAD_PREFIXES, send_error

# Never limited: load-balancer probes, the web client's files, Prometheus scrapes.
EXEMPT_PREFIXES = ("/health", "/static/", "/metrics/prometheus", "/favicon.ico")
# Never limited when read (GET, HEAD): HLS playlists and segments, live and stored.
# A player re-reads a live playlist every segment (~2 s) and fetches each segment, so a
# viewer alone would pass 100 requests a minute. These reads are authorised by the
# playback ID or token in the URL and served from files, not the database.
MEDIA_PREFIXES = ("/live/", "/media/videos/")
_READS = frozenset({"GET", "HEAD"})

# Writes counted per user too; uploads send many chunks and have their own limits.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
    """The client's address.

    uvicorn (``--proxy-headers``) replaces the peer address with the one in
    ``X-Forwarded-For`` only when the peer is one of ``--forwarded-allow-ips``
    (default 127.0.0.1); from anyone else the header is ignored, so a client cannot
    pick the key its requests are limited under.
    """
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class Limiter:
    """``await limiter.enforce(item, "login", key)`` raises 429 past the limit."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit.enabled
        self.strategy = MovingWindowRateLimiter(create_storage(settings))
        limits = settings.rate_limit
        self.login_per_pair = RateLimitItemPerSecond(
            limits.login_attempts, limits.login_window_seconds
        )
        self.login_per_ip = RateLimitItemPerSecond(
            limits.login_attempts_per_ip, limits.login_window_seconds
        )
        self.login_per_account = RateLimitItemPerSecond(
            limits.login_attempts_per_account, limits.login_window_seconds
        )
        self.ws_connects = RateLimitItemPerSecond(
            settings.rate_limit.ws_connects, settings.rate_limit.window_seconds
        )
        self.knocks = RateLimitItemPerSecond(
            settings.lobby.knocks, settings.lobby.knock_window_seconds
        )

    async def retry_after(self, item: RateLimitItem, *keys: str) -> int | None:
        """Count a hit; None when allowed, else the seconds until the next is allowed."""
        if not self.enabled or await self.strategy.hit(item, *keys):
            return None
        stats = await self.strategy.get_window_stats(item, *keys)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def clear(self, item: RateLimitItem, *keys: str) -> None:
        """Forget the hits counted under ``keys``."""
        await self.strategy.clear(item, *keys)

    async def remember(self, key: str, *, seconds: int) -> None:
        """Note a fact (a flag in the limits' storage, shared by instances) for a while."""
        await self.strategy.storage.incr(f"fact/{key}", seconds)

    async def remembers(self, key: str) -> bool:
        """Whether ``remember(key)`` was called within its time."""
        return await self.strategy.storage.get(f"fact/{key}") > 0

    async def first_use(self, key: str, *, seconds: int) -> bool:
        """True for the first call with ``key`` within ``seconds``, False for every later one.

        One atomic increment (INCR in Redis): of concurrent callers, on any instance that
        shares the storage, exactly one gets True. Counts even with limits turned off.
        """
        return await self.strategy.storage.incr(f"once/{key}", seconds) == 1

    async def enforce(self, item: RateLimitItem, *keys: str, detail: str) -> None:
        """Count a hit and raise ``TooManyRequests`` past the limit."""
        wait = await self.retry_after(item, *keys)
        if wait is not None:
            raise TooManyRequests(f"{detail}; retry in {wait} s", retry_after=wait)


class RateLimitMiddleware:
    """Count each request against its IP; 429 with ``Retry-After`` past the limit."""

    def __init__(self, app: ASGIApp, settings: Settings, strategy: MovingWindowRateLimiter) -> None:
        self.app = app
        self.enabled = settings.rate_limit.enabled
        self.exempt_media = settings.rate_limit.exempt_media
        self.item = RateLimitItemPerSecond(
            settings.rate_limit.requests, settings.rate_limit.window_seconds
        )
        self.user_item = RateLimitItemPerSecond(
            settings.rate_limit.user_writes, settings.rate_limit.user_writes_window_seconds
        )
        self.settings = settings
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
            await _too_many(send, self.item, stats.reset_time, headers, "")
            return
        if scope.get("method") in WRITE_METHODS and not path.startswith(UPLOAD_PREFIXES):
            user_id = verified_subject(scope, self.settings.jwt)
            if user_id is not None and not await self.limiter.hit(
                self.user_item, "user-write", user_id
            ):
                user_stats = await self.limiter.get_window_stats(
                    self.user_item, "user-write", user_id
                )
                await _too_many(
                    send, self.user_item, user_stats.reset_time, headers, " writes per user"
                )
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _too_many(
    send: Send,
    item: RateLimitItemPerSecond,
    reset_time: float,
    headers: list[tuple[bytes, bytes]],
    what: str,
) -> None:
    """A 429 with ``Retry-After`` and a detail naming the limit."""
    retry_after = max(1, math.ceil(reset_time - time.time()))
    detail = (
        f"Too many requests: the limit is {item.amount}{what} per "
        f"{int(item.get_expiry())} s; retry in {retry_after} s"
    )
    await send_error(send, 429, detail, [(b"retry-after", str(retry_after).encode()), *headers])
