"""What ``/health`` and ``/health/ready`` ask the domains, registered by the builder.

Observability knows no domain: the composition root (``videochat.runtime``) tells it
which totals to count and which parts to ask whether they are ready.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# A total shown in /health's stats (say, every room), counted in the given session.
CountQuery = Callable[[AsyncSession], Awaitable[int]]
# A part's readiness: at least ``{"status": "healthy" | "unhealthy"}``, maybe figures.
ReadinessCheck = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class HealthSources:
    """The totals and readiness checks the health endpoints report, by name."""

    totals: dict[str, CountQuery] = field(default_factory=dict)
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    # /health is never rate-limited and counting whole tables is not free (a count of 3 M
    # messages takes ~180 ms): the totals are counted at most once per this long.
    totals_ttl_seconds: float = 10.0
    _counted: tuple[float, dict[str, int]] | None = None
    _counting: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def counted_totals(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> dict[str, int]:
        """The totals, counted at most once per TTL; concurrent callers share one count."""
        async with self._counting:
            if self._counted is not None:
                counted_at, values = self._counted
                if time.monotonic() - counted_at < self.totals_ttl_seconds:
                    return values
            async with sessionmaker() as session:
                values = {name: await count(session) for name, count in self.totals.items()}
            self._counted = (time.monotonic(), values)
            return values
