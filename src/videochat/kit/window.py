"""A moving-window count kept by its owner (one socket's frames, one peer's signal bytes).

The same rule as ``limits``' moving window: at most ``limit`` units were taken in any
span of ``seconds``. ``limits``' in-memory storage keeps every key of the process in one
store and sweeps expired entries with a task that walks every key, with a hop to a
thread for each, and starts again after the next hit once done. Counted per frame, that
sweep cost a server with rate limits on (the default) 3.6 times the CPU per delivered
message of the same server with them off (89 against 25 µs, 1,000 sockets, 10,000
deliveries/s; docs/BENCHMARKS.md). A window owned by the socket's handler needs no key,
no lock and no sweep: its expired entries go when it is next hit, and all of it goes
with the socket.
"""

from __future__ import annotations

import time
from collections import deque


class MovingWindow:
    """At most ``limit`` units in any ``seconds``; each ``take`` is one hit of ``cost`` units."""

    __slots__ = ("_hits", "_taken", "limit", "seconds")

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._hits: deque[tuple[float, int]] = deque()
        self._taken = 0  # the units of the hits in _hits

    def take(self, cost: int = 1, *, now: float | None = None) -> bool:
        """Count ``cost`` units now; False (nothing counted) when that would pass the limit."""
        moment = self._move_to(now)
        if self._taken + cost > self.limit:
            return False
        self._hits.append((moment, cost))
        self._taken += cost
        return True

    def span(self, *, now: float | None = None) -> tuple[float, int]:
        """When the oldest hit still in the window was (now when none is), and the units
        taken in the window."""
        moment = self._move_to(now)
        return (self._hits[0][0] if self._hits else moment), self._taken

    def idle(self, *, now: float | None = None) -> bool:
        """True when no hit is within the window any more (the window can be dropped)."""
        self._move_to(now)
        return not self._hits

    def _move_to(self, now: float | None) -> float:
        """Forget the hits the window has moved past at ``now`` (the clock's when None)."""
        moment = time.monotonic() if now is None else now
        start, hits = moment - self.seconds, self._hits
        # (A hit exactly at the window's start still counts, as in ``limits``.)
        while hits and hits[0][0] < start:
            self._taken -= hits.popleft()[1]
        return moment
