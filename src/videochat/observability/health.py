"""What ``/health`` and ``/health/ready`` ask the domains, registered by the builder.

Observability knows no domain: the composition root (``videochat.runtime``) tells it
which totals to count and which parts to ask whether they are ready.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

# A total shown in /health's stats (say, every room), counted in the given session.
CountQuery = Callable[[AsyncSession], Awaitable[int]]
# A part's readiness: at least ``{"status": "healthy" | "unhealthy"}``, maybe figures.
ReadinessCheck = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class HealthSources:
    """The totals and readiness checks the health endpoints report, by name."""

    totals: dict[str, CountQuery] = field(default_factory=dict)
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
