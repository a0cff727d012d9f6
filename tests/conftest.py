"""Fixtures: settings per storage backend, a live server, an HTTP client.

The schema is migrated once per run: SQLite tests get a copy of a migrated template
file, PostgreSQL tests share the run's migrated database, emptied before each test.
Test servers therefore start with ``auto_migrate`` off.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests import services
from tests.markers import longest_first, mark_by_kind
from tests.processes import free_port, server_env, start_server, stop_server
from tests.support import LiveServer, run_server
from videochat.config import Settings
from videochat.db.engine import create_engine
from videochat.db.migrate import upgrade_to_head

# Marked at collection, so `-m "not postgres"` (make test-fast) leaves those variants out.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_by_kind(items)
    longest_first(items)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, except that the browser modules go to one worker, one after
    the other: two Chromium scenario runs at once on two cores took up to twice as long
    (and timed out). (``--dist loadgroup`` would do it with marks, but pytest-xdist 3.8
    cannot rename a node's id on pytest 9, so its groups are silently ignored.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.scheduling import OneWorkerForTheBrowser

    return OneWorkerForTheBrowser(config, log)


async def _migrate(url: str) -> None:
    engine = create_async_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2 at its lowest cost: the default (64 MiB, ~0.2 s of CPU a hash) is for production.

    A hash carries its own parameters, so verifying works whatever made it.
    """
    from argon2 import PasswordHasher

    from videochat.accounts import passwords

    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", hasher)
        passwords._dummy_hash.cache_clear()  # made again, by the cheap hasher
        yield
    passwords._dummy_hash.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def shared_tls_context() -> Iterator[None]:
    """One default TLS context for every httpx client: each new one reads the CA bundle (~40 ms)."""
    from httpx._transports import default

    create = default.create_ssl_context
    shared = create()

    def reuse(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is True and cert is None and trust_env:
            return shared
        return create(verify=verify, cert=cert, trust_env=trust_env)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(default, "create_ssl_context", reuse)
        yield


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per run; tests get copies of it."""
    path = tmp_path_factory.mktemp("schema") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database of this test's own (a copy of the template)."""
    path = tmp_path / "videochat.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL database for the whole run, migrated to head."""
    name, url = services.create_pg_database()
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        services.drop_pg_database(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A clean database at head, of the requested backend, for one test."""
    if backend == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(services.empty_pg_database(url))
    return url


@pytest.fixture
def blank_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema at all), for tests of the migrations themselves."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'blank.db'}"
        return
    name, url = services.create_pg_database()
    try:
        yield url
    finally:
        services.drop_pg_database(name)


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    """Settings for a test, with overrides; rate limits off unless a test turns them on."""

    def make(**overrides: Any) -> Settings:
        # The fixtures hand out databases already at head: no migration at start-up.
        database = {"auto_migrate": False, **overrides.pop("database", {})}
        values: dict[str, Any] = {
            "environment": "test",
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "database": database,
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
    """An engine on the test's database (already at head)."""
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def two_instances(postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two `videochat serve` processes sharing the test PostgreSQL and Redis."""
    services.redis_available()
    asyncio.run(services.empty_pg_database(postgres_url))
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
