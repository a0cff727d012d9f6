"""Rate limits over one ``limits`` storage (in memory, or Redis when configured).

With Redis, counters are shared by every instance; while Redis is unreachable they fail
open to this process's memory (``FailoverRateLimiter``): each instance enforces the
limits alone, so a client may get up to N instances times the limit during an outage,
but the API keeps answering instead of turning every limited request into a 500.

``Limiter`` holds the named limits a route or the socket handshake enforces itself
(logins, knocks, socket connects); ``RateLimitMiddleware`` counts every HTTP request
per user when it carries a valid token (and per address, as a wider backstop), per
client IP when it does not, and writes per user too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.util import WindowStats
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videochat.config import Settings
from videochat.exceptions import TooManyRequests
from videochat.kit.redis_client import client_options
from videochat.observability import metrics
from videochat.security.identity import verified_subject
from videochat.security.process_storage import ProcessStorage
from videochat.security.responses import UPLOAD_PREFIXES, send_error

T = TypeVar("T")

# Never limited: load-balancer probes, the web client's files and its page (one static
# file at /chat and every address under it: counted, it turned people away at an office's
# shared address before the page could even show), Prometheus scrapes.
EXEMPT_PREFIXES = ("/health", "/static/", "/chat/", "/metrics/prometheus", "/favicon.ico")
# ... and these exact paths (a prefix "/chat" would also let "/chatter" through uncounted).
EXEMPT_PATHS = frozenset({"/chat"})
# Never limited when read (GET, HEAD): HLS playlists and segments, live and stored.
# A player re-reads a live playlist every segment (~2 s) and fetches each segment, so a
# viewer alone would pass 100 requests a minute. These reads are authorised by the
# playback ID or token in the URL and served from files, not the database.
MEDIA_PREFIXES = ("/live/", "/media/videos/")
_READS = frozenset({"GET", "HEAD"})

# Writes counted per user too; uploads send many chunks and have their own limits.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Requests on one existing upload slot (all of UPLOAD_PREFIXES but the tus creation
# POST): one per chunk, so counted by their own limit (``upload_requests``) per user.
SLOT_PREFIXES = ("/uploads/tus/", "/upload-proxy/")
TUS_PREFIX = "/uploads/tus"


log = structlog.get_logger(__name__)
# What a storage that cannot reach Redis raises.
STORAGE_FAILURES = (RedisError, StorageError, OSError, TimeoutError)


def create_storage(settings: Settings) -> Storage:
    """Counters shared by every instance when Redis is configured, else in memory."""
    if settings.redis.url:
        # redis-py (already a dependency) rather than limits' default coredis; options
        # that fail fast, so an outage costs one quick error before the fallback.
        storage = storage_from_string(
            "async+" + settings.redis.url,
            implementation="redispy",
            key_prefix="videochat",
            **client_options(socket_timeout=2.0),
        )
        assert isinstance(storage, Storage)
        return storage
    return ProcessStorage()


class FailoverRateLimiter:
    """A moving-window limiter on the shared storage, or in memory while it is away.

    The first failed call switches to the in-process counters (a log line and the
    ``videochat_redis_degraded{part="rate_limit"}`` gauge say so); the shared storage
    is tried again ``retry_seconds`` later, and used again once it answers.
    """

    def __init__(self, storage: Storage, *, retry_seconds: float = 2.0) -> None:
        self._local = MovingWindowRateLimiter(ProcessStorage())
        self._shared = None if isinstance(storage, ProcessStorage) else storage
        self._strategy = MovingWindowRateLimiter(storage) if self._shared else self._local
        self.retry_seconds = retry_seconds
        self._retry_at: float | None = None  # set while in memory: when to try again

    @property
    def degraded(self) -> bool:
        """True while counting in this process because the shared storage is away."""
        return self._retry_at is not None

    def _pick(self) -> MovingWindowRateLimiter | None:
        """The shared strategy to try now, or None to count in memory."""
        if self._shared is None:
            return None
        if self._retry_at is not None and time.monotonic() < self._retry_at:
            return None
        return self._strategy

    def _failed(self, exc: BaseException) -> None:
        if self._retry_at is None:
            log.warning("ratelimit.storage_unavailable", error=str(exc), fallback="memory")
            metrics.redis_degraded("rate_limit", True)
        self._retry_at = time.monotonic() + self.retry_seconds

    def _recovered(self) -> None:
        if self._retry_at is not None:
            self._retry_at = None
            log.info("ratelimit.storage_restored")
            metrics.redis_degraded("rate_limit", False)

    async def _run(self, use: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        """``use`` on the shared strategy when it answers, else on the in-process one."""
        shared = self._pick()
        if shared is not None:
            try:
                result = await use(shared)
            except STORAGE_FAILURES as exc:
                self._failed(exc)
            else:
                self._recovered()
                return result
        return await use(self._local)

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count a hit; False past the limit."""
        return await self._run(lambda strategy: strategy.hit(item, *identifiers))

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """When the window resets and how many hits remain."""
        return await self._run(lambda strategy: strategy.get_window_stats(item, *identifiers))

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        """Forget the hits counted under ``identifiers``."""
        await self._run(lambda strategy: strategy.clear(item, *identifiers))

    async def incr(self, key: str, expiry: int) -> int:
        """Increment a plain counter that expires (atomic in Redis); its new value."""
        return await self._run(lambda strategy: strategy.storage.incr(key, expiry))

    async def get(self, key: str) -> int:
        """A plain counter's value (0 when unset or expired)."""
        return await self._run(lambda strategy: strategy.storage.get(key))


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
        self.strategy = FailoverRateLimiter(create_storage(settings))
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
        await self.strategy.incr(f"fact/{key}", seconds)

    async def remembers(self, key: str) -> bool:
        """Whether ``remember(key)`` was called within its time."""
        return await self.strategy.get(f"fact/{key}") > 0

    async def first_use(self, key: str, *, seconds: int) -> bool:
        """True for the first call with ``key`` within ``seconds``, False for every later one.

        One atomic increment (INCR in Redis): of concurrent callers, on any instance that
        shares the storage, exactly one gets True. Counts even with limits turned off.
        """
        return await self.strategy.incr(f"once/{key}", seconds) == 1

    async def enforce(self, item: RateLimitItem, *keys: str, detail: str) -> None:
        """Count a hit and raise ``TooManyRequests`` past the limit."""
        wait = await self.retry_after(item, *keys)
        if wait is not None:
            raise TooManyRequests(f"{detail}; retry in {wait} s", retry_after=wait)


class RateLimitMiddleware:
    """Count each request against its user (or its IP without a token); 429 with
    ``Retry-After`` past the limit."""

    def __init__(self, app: ASGIApp, settings: Settings, strategy: FailoverRateLimiter) -> None:
        self.app = app
        self.enabled = settings.rate_limit.enabled
        self.exempt_media = settings.rate_limit.exempt_media
        self.item = RateLimitItemPerSecond(
            settings.rate_limit.requests, settings.rate_limit.window_seconds
        )
        self.address_item = RateLimitItemPerSecond(
            settings.rate_limit.requests_per_ip, settings.rate_limit.window_seconds
        )
        self.user_item = RateLimitItemPerSecond(
            settings.rate_limit.user_writes, settings.rate_limit.user_writes_window_seconds
        )
        self.upload_item = RateLimitItemPerSecond(
            settings.rate_limit.upload_requests, settings.rate_limit.upload_window_seconds
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
            or path in EXEMPT_PATHS
            or (
                self.exempt_media
                and scope.get("method") in _READS
                and path.startswith(MEDIA_PREFIXES)
            )
        ):
            await self.app(scope, receive, send)
            return
        user_id = verified_subject(scope, self.settings.jwt)
        if path.startswith(SLOT_PREFIXES):
            item, keys, what = self.upload_item, _uploader(scope, user_id), " upload requests"
        elif user_id is not None:
            # Signed in: the person's own count. Many people share an address (an
            # office's NAT: ~10 counted requests each to open a room, so 100 per
            # address turned the 11th colleague joining a meeting away).
            item, keys, what = self.item, ("http-user", user_id), ""
            # (The backstop: one address with many throwaway accounts.)
            backstop = (self.address_item, "http-address", client_ip(scope))
            if await self._refused(send, backstop, " per address"):
                return
        else:
            item, keys, what = self.item, ("http", client_ip(scope)), ""
        allowed = await self.limiter.hit(item, *keys)
        stats = await self.limiter.get_window_stats(item, *keys)
        headers = _rate_headers(item, stats)
        if not allowed:
            # tus clients look for Tus-Resumable on every answer, a refusal included.
            tus = [(b"tus-resumable", b"1.0.0")] if path.startswith(TUS_PREFIX) else []
            await _too_many(send, item, stats.reset_time, [*headers, *tus], what)
            return
        if (
            user_id is not None
            and scope.get("method") in WRITE_METHODS
            and not path.startswith(UPLOAD_PREFIXES)
            and await self._refused(
                send, (self.user_item, "user-write", user_id), " writes per user", headers
            )
        ):
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refused(
        self,
        send: Send,
        limit: tuple[RateLimitItemPerSecond, str, str],
        what: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> bool:
        """Count a hit on a further limit (``item, *keys``); past it, answer 429 and True.

        The refusal carries the request's own ``X-RateLimit-*`` headers when it has some
        (the user's count), else this limit's.
        """
        item, *keys = limit
        if await self.limiter.hit(item, *keys):
            return False
        stats = await self.limiter.get_window_stats(item, *keys)
        await _too_many(send, item, stats.reset_time, headers or _rate_headers(item, stats), what)
        return True


def _rate_headers(item: RateLimitItem, stats: WindowStats) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", str(item.amount).encode()),
        (b"x-ratelimit-remaining", str(max(0, stats.remaining)).encode()),
    ]


def _uploader(scope: Scope, user_id: str | None) -> tuple[str, str]:
    """Whose upload requests these are: the token's user, else the address.

    Not the slot id in the path: any made-up id would start a fresh count.
    """
    if user_id is not None:
        return "upload-user", user_id
    return "upload-ip", client_ip(scope)


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
