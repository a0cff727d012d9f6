"""Fixtures: settings per storage backend, a live server, an HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import services
from tests.processes import free_port, server_env, start_server, stop_server
from tests.support import LiveServer, run_server
from videochat.config import Settings
from videochat.db.engine import create_engine
from videochat.db.migrate import upgrade_to_head

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL database for the whole run."""
    name, url = services.create_pg_database()
    yield url
    services.drop_pg_database(name)


async def _truncate_postgres(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            tables = (
                await connection.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            ).scalars()
            names = ", ".join(f'"{name}"' for name in tables)
            if names:
                await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A clean database of the requested backend for one test."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'videochat.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(_truncate_postgres(url))
    yield url


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    """Settings for a test, with overrides; rate limits off unless a test turns them on."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "rate_limit": {"enabled": False},
            "log_level": "WARNING",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    """The app, served on a loopback port in the test's event loop."""
    async with run_server(settings) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        yield http


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    await upgrade_to_head(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def two_instances(postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two `videochat serve` processes sharing the test PostgreSQL and Redis."""
    services.redis_available()
    asyncio.run(_truncate_postgres(postgres_url))
    urls, processes = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            env = server_env(tmp_path / name, postgres_url, VIDEOCHAT_REDIS__URL=services.REDIS_URL)
            processes.append(start_server(env, port))
            urls.append(f"http://127.0.0.1:{port}")
        yield urls[0], urls[1]
    finally:
        for process in processes:
            stop_server(process)
