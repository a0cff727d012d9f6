"""Frames per socket: a moving window per connection, larger for kinds that come in bursts."""

from __future__ import annotations

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from videochat.config import Settings

_limiter = MovingWindowRateLimiter(MemoryStorage())


class FrameBudget:
    def __init__(self, settings: Settings) -> None:
        rate = settings.rate_limit
        self.enabled = rate.enabled
        self._usual = RateLimitItemPerSecond(rate.ws_frames, rate.ws_frames_window_seconds)
        # WebRTC signalling comes in bursts (offers, answers, ICE candidates while a call
        # of six starts): such kinds get five times the budget, kept apart.
        self._bursty = RateLimitItemPerSecond(rate.ws_frames * 5, rate.ws_frames_window_seconds)

    async def spend(self, connection_id: str, *, bursty: bool) -> bool:
        """Count one frame; False when the socket is over its budget."""
        if not self.enabled:
            return True
        if bursty:
            return await _limiter.hit(self._bursty, "burst", connection_id)
        return await _limiter.hit(self._usual, "frames", connection_id)
