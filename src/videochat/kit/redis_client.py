"""Redis clients that fail fast while Redis is away and heal once it is back.

redis-py's default retries a refused command ten times with up to a second between
tries, so every call made during an outage would hang for seconds. Here a command is
retried twice at most, quickly: enough for a pooled connection that died with the
previous Redis (the retry opens a fresh one), short enough that callers can fall back
to their outage behaviour at once. Idle pooled connections are checked with a PING
before reuse, so a restart is noticed before a real command fails on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_SECONDS = 2.0
HEALTH_CHECK_SECONDS = 10


def client_options(*, socket_timeout: float | None = 5.0, retries: int = 2) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url`` (or ``limits``' storage) that fail fast."""
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": socket_timeout,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.02), retries=retries),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, ConnectionResetError],
    }


def connect(
    url: str,
    *,
    decode_responses: bool = False,
    socket_timeout: float | None = 5.0,
    retries: int = 2,
) -> Redis:
    """A pooled client for ``url`` (nothing is opened until the first command)."""
    options = client_options(socket_timeout=socket_timeout, retries=retries)
    return Redis.from_url(url, decode_responses=decode_responses, **options)


class Breaker:
    """Skip Redis for a moment after it failed, so an outage costs one error, not one per call.

    ``part`` names the user in the log line and the ``videochat_redis_degraded`` gauge
    (told through ``on_change(part, degraded)``, so this module knows no metrics).
    """

    def __init__(
        self,
        part: str,
        *,
        retry_seconds: float = 2.0,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.part = part
        self.retry_seconds = retry_seconds
        self.on_change = on_change
        self._retry_at: float | None = None

    @property
    def open(self) -> bool:
        """True while Redis is skipped (it failed less than ``retry_seconds`` ago)."""
        return self._retry_at is not None and time.monotonic() < self._retry_at

    @property
    def degraded(self) -> bool:
        """True from a failure until the next success."""
        return self._retry_at is not None

    def failed(self, exc: BaseException) -> None:
        if self._retry_at is None:
            log.warning("redis.unreachable", part=self.part, error=str(exc))
            if self.on_change is not None:
                self.on_change(self.part, True)
        self._retry_at = time.monotonic() + self.retry_seconds

    def succeeded(self) -> None:
        if self._retry_at is not None:
            self._retry_at = None
            log.info("redis.restored", part=self.part)
            if self.on_change is not None:
                self.on_change(self.part, False)
