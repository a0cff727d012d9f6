"""Frames per socket: a moving window per connection, larger for kinds that come in bursts.

Each budget belongs to one socket's handler and is counted in its own windows
(``kit.window``): no shared store, nothing left behind when the socket goes.
"""

from __future__ import annotations

import math

from videochat.config import Settings
from videochat.kit.window import MovingWindow

# A socket's windows of signal bytes, one per peer, are pruned of idle ones past this many.
PEER_WINDOWS_PRUNED_AT = 64


class FrameBudget:
    def __init__(self, settings: Settings) -> None:
        rate = settings.rate_limit
        self.enabled = rate.enabled
        self._usual = MovingWindow(rate.ws_frames, rate.ws_frames_window_seconds)
        # WebRTC signalling comes in bursts (offers, answers, ICE candidates while a call
        # of six starts): such kinds get five times the budget, kept apart.
        self._bursty = MovingWindow(rate.ws_frames * 5, rate.ws_frames_window_seconds)

    def spend(self, *, bursty: bool) -> bool:
        """Count one frame; False when the socket is over its budget."""
        if not self.enabled:
            return True
        return (self._bursty if bursty else self._usual).take()


class PeerBudget:
    """Signal bytes per socket per peer: one sender cannot bury one recipient in SDP."""

    def __init__(self, settings: Settings) -> None:
        calls = settings.calls
        self.enabled = settings.rate_limit.enabled
        # Counted in KiB (a signal of any size costs at least one).
        self._limit = max(1, calls.signal_bytes_per_peer // 1024)
        self._seconds = calls.signal_window_seconds
        self._peers: dict[str, MovingWindow] = {}

    def spend(self, peer: str, size: int) -> bool:
        """Count ``size`` bytes towards ``peer``; False when over the budget."""
        if not self.enabled:
            return True
        window = self._peers.get(peer)
        if window is None:
            if len(self._peers) >= PEER_WINDOWS_PRUNED_AT:
                # Peers come and go over a long call: forget those with nothing counted.
                self._peers = {p: w for p, w in self._peers.items() if not w.idle()}
            window = self._peers[peer] = MovingWindow(self._limit, self._seconds)
        return window.take(min(self._limit, max(1, math.ceil(size / 1024))))
