"""Named rate limits over one ``limits`` storage: in memory, or Redis when configured."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter

from videochat.config import Settings
from videochat.exceptions import TooManyRequests
from videochat.security.ratelimit import create_storage


class Limiter:
    """``await limiter.enforce(item, "login", key)`` raises 429 past the limit."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit.enabled
        self.strategy = MovingWindowRateLimiter(create_storage(settings))
        self.login_per_account = RateLimitItemPerSecond(10, 300)
        self.login_per_ip = RateLimitItemPerSecond(30, 300)
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

    async def enforce(self, item: RateLimitItem, *keys: str, detail: str) -> None:
        """Count a hit and raise ``TooManyRequests`` past the limit."""
        wait = await self.retry_after(item, *keys)
        if wait is not None:
            raise TooManyRequests(f"{detail}; retry in {wait} s", retry_after=wait)
