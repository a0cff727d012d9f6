"""The rate limits' counters in this process's memory (no Redis configured, or Redis away).

``limits``' own in-memory storage sweeps its expired entries with a task that walks
every key, with a hop to a thread for each, and is started again by the first hit after
it ends: under steady traffic it never stops, and its cost grows with the number of
clients and users counted in the last window. Here each key's entries go when the key is
next used, and keys nobody used for a while go a few at a time, oldest first, as others
are used: no task, no thread, no walk over every key.
"""

from __future__ import annotations

import time

from limits.aio.storage import MovingWindowSupport, Storage

from videochat.kit.window import MovingWindow

# Keys looked at for expiry per use, from the least recently used: more than one, so the
# stale ones go faster than new ones come.
SWEEP_PER_USE = 2


class ProcessStorage(Storage, MovingWindowSupport):
    """Moving windows and expiring counters for ``limits``' strategies, in this process."""

    STORAGE_SCHEME = None  # (not a URI scheme: made directly, never from a string)

    def __init__(self) -> None:
        super().__init__()
        # Least recently used first (a use moves its key to the end).
        self._windows: dict[str, MovingWindow] = {}
        self._counters: dict[str, tuple[int, float]] = {}  # key: (value, expires at)

    def __len__(self) -> int:
        """The keys held (windows and counters)."""
        return len(self._windows) + len(self._counters)

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError  # (nothing here fails as a storage would)

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = time.time()
        return self._window(key, limit, expiry, now).take(amount, now=now)

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        window = self._windows.get(key)
        return (now, 0) if window is None else window.span(now=now)

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        self._sweep(now)
        value, expires = self._counters.pop(key, (0, 0.0))
        if expires <= now:
            value, expires = 0, now + expiry
        self._counters[key] = (value + amount, expires)
        return value + amount

    async def get(self, key: str) -> int:
        value, expires = self._counters.get(key, (0, 0.0))
        return value if expires > time.time() else 0

    async def get_expiry(self, key: str) -> float:
        now = time.time()
        _, expires = self._counters.get(key, (0, now))
        return max(expires, now)

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        count = len(self)
        self._windows.clear()
        self._counters.clear()
        return count

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)
        self._counters.pop(key, None)

    def _window(self, key: str, limit: int, expiry: int, now: float) -> MovingWindow:
        self._sweep(now)
        window = self._windows.pop(key, None) or MovingWindow(limit, expiry)
        self._windows[key] = window
        return window

    def _sweep(self, now: float) -> None:
        for _ in range(SWEEP_PER_USE):
            oldest = next(iter(self._windows), None)
            if oldest is None or not self._windows[oldest].idle(now=now):
                break
            del self._windows[oldest]
        for _ in range(SWEEP_PER_USE):
            oldest = next(iter(self._counters), None)
            if oldest is None or self._counters[oldest][1] > now:
                break
            del self._counters[oldest]
