"""``/health/live`` and ``/health/ready`` for load balancers."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests import services
from tests.support import LiveServer, run_server
from videochat.config import Settings


async def test_live_and_ready_answer_200(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "alive"
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["job_queue"]["status"] == "healthy"
    assert "redis" not in body["checks"]  # not configured


async def test_ready_is_503_when_the_database_is_down(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    context = server.context
    working = context.engine
    context.engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
    finally:
        await context.engine.dispose()
        context.engine = working
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["checks"]["database"]["status"] == "unhealthy"
    assert live.status_code == 200  # liveness depends on nothing
    assert (await client.get("/health/ready")).status_code == 200


async def test_ready_is_503_when_the_job_queue_stopped(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    # The in-process runner, stopped: no worker task is left to run jobs.
    await server.context.video_jobs.stop()
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["job_queue"]["status"] == "unhealthy"


@pytest.mark.redis
async def test_ready_checks_redis_when_configured(
    make_settings: Callable[..., Settings],
) -> None:
    services.redis_available()
    settings = make_settings(redis={"url": services.REDIS_URL})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        ready = await http.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis"]["status"] == "healthy"
        # The probe reads the configured URL each time: point it at a closed port.
        settings.redis.url = "redis://127.0.0.1:1/0"
        try:
            down = await http.get("/health/ready")
            health = await http.get("/health")
        finally:
            settings.redis.url = services.REDIS_URL
        assert down.status_code == 503
        assert down.json()["checks"]["redis"]["status"] == "unhealthy"
        assert health.status_code == 503
        assert health.json()["services"]["broker"]["status"] == "unhealthy"


async def test_probes_are_never_rate_limited(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(rate_limit={"enabled": True, "requests": 2, "window_seconds": 60})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        limited = [(await http.get("/rooms")).status_code for _ in range(4)]
        assert 429 in limited
        for _ in range(5):
            assert (await http.get("/health/live")).status_code == 200
            assert (await http.get("/health/ready")).status_code == 200
