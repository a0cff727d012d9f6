"""``runtime.open_context``: a start-up that fails half-way leaves nothing running."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from videochat import runtime
from videochat.chat.writer import MessageWriter
from videochat.config import Settings
from videochat.db import lifecycle
from videochat.kit.cache import MemoryCache
from videochat.live.ingest import LiveManager
from videochat.media.tasks import InProcessJobRunner
from videochat.observability import metrics
from videochat.observability.metrics import QueueRefresher, RuntimeMetrics
from videochat.realtime.broker import MemoryBroker
from videochat.realtime.hub import Hub
from videochat.realtime.presence import MemoryPresence


class _Refused(Exception):
    pass


def _record_engines(monkeypatch: pytest.MonkeyPatch) -> list[tuple[AsyncEngine, object]]:
    """Every engine the builder makes, with the pool it started with."""
    made: list[tuple[AsyncEngine, object]] = []
    create = lifecycle.create_engine

    def recording(settings: Settings) -> AsyncEngine:
        engine = create(settings)
        made.append((engine, engine.pool))
        return engine

    monkeypatch.setattr(lifecycle, "create_engine", recording)
    return made


def _record_stops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    stopped: list[str] = []
    for cls, name in (
        (LiveManager, "stop"),
        (QueueRefresher, "stop"),
        (RuntimeMetrics, "stop"),
        (InProcessJobRunner, "stop"),
        (MessageWriter, "stop"),
        (Hub, "close_all"),
        (MemoryPresence, "stop"),
        (MemoryBroker, "stop"),
        (MemoryCache, "close"),
    ):
        original = getattr(cls, name)
        label = f"{cls.__name__}.{name}"

        async def spy(self: Any, _original: Any = original, _label: str = label) -> None:
            stopped.append(_label)
            await _original(self)

        monkeypatch.setattr(cls, name, spy)
    return stopped


async def test_a_part_failing_to_start_stops_every_part_started_before_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engines = _record_engines(monkeypatch)
    stopped = _record_stops(monkeypatch)

    async def refuse(self: LiveManager) -> None:
        raise _Refused

    monkeypatch.setattr(LiveManager, "start", refuse)
    tasks_before = asyncio.all_tasks()
    sources_before = list(metrics.RUNTIME.sources)
    with pytest.raises(_Refused):
        async with runtime.open_context(settings):
            pytest.fail("the context opened although a part failed to start")
    # Every part, the failed one included, stopped in the reverse of the start order.
    assert stopped == [
        "LiveManager.stop",
        "QueueRefresher.stop",
        "RuntimeMetrics.stop",
        "InProcessJobRunner.stop",
        "MessageWriter.stop",
        "Hub.close_all",
        "MemoryPresence.stop",
        "MemoryBroker.stop",
        "MemoryCache.close",
    ]
    ((engine, first_pool),) = engines
    assert engine.pool is not first_pool  # disposed: its pool was closed and replaced
    assert metrics.RUNTIME.sources == sources_before
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == tasks_before  # no job worker or timer left behind


async def test_an_unreachable_redis_leaves_nothing_running(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    engines = _record_engines(monkeypatch)
    settings = make_settings(redis={"url": "redis://127.0.0.1:1/0"})
    tasks_before = asyncio.all_tasks()
    with pytest.raises(Exception) as failure:
        async with runtime.open_context(settings):
            pytest.fail("the context opened without its broker")
    assert "connect" in str(failure.value).lower()
    ((engine, first_pool),) = engines
    assert engine.pool is not first_pool
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == tasks_before


async def test_the_context_opens_every_part_and_closes_them_in_reverse(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = _record_stops(monkeypatch)
    async with runtime.open_context(settings) as context:
        assert context.live is not None and context.video_jobs is not None
        assert list(context.health.totals) == ["total_messages", "total_rooms", "total_users"]
        assert (await context.health.readiness["job_queue"]())["status"] == "healthy"
        assert stopped == []
    assert stopped[0] == "LiveManager.stop" and stopped[-1] == "MemoryCache.close"
