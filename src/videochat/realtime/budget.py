"""Frames per socket: a moving window per connection, larger for kinds that come in bursts."""

from __future__ import annotations

import math

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


class PeerBudget:
    """Signal bytes per socket per peer: one sender cannot bury one recipient in SDP."""

    def __init__(self, settings: Settings) -> None:
        calls = settings.calls
        self.enabled = settings.rate_limit.enabled
        # Counted in KiB: the moving window keeps one entry per unit spent.
        self._item = RateLimitItemPerSecond(
            max(1, calls.signal_bytes_per_peer // 1024), calls.signal_window_seconds
        )

    async def spend(self, connection_id: str, peer: str, size: int) -> bool:
        """Count ``size`` bytes towards ``peer``; False when over the budget."""
        if not self.enabled:
            return True
        cost = min(self._item.amount, max(1, math.ceil(size / 1024)))
        return await _limiter.hit(self._item, "signal", connection_id, peer, cost=cost)
