"""The machine's real PostgreSQL and Redis for tests: reach them, or skip (fail in CI)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import asyncpg
import pytest

PG_HOST = os.environ.get("VIDEOCHAT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("VIDEOCHAT_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("VIDEOCHAT_TEST_PG_USER", "postgres")
# pytest-xdist workers (gw0, gw1, ...) each get a Redis database of their own, so rate-limit
# keys, job queues and broker channels of parallel tests never meet.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_URL = os.environ.get("VIDEOCHAT_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{_WORKER}")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is missing on a user's machine; fail the run in CI."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI must have it)", pytrace=False)
    pytest.skip(f"{message}; start it to run these tests")


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres"
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_pg_database() -> tuple[str, str]:
    """A fresh database for this test run; returns (name, SQLAlchemy URL)."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"videochat_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return name, f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(name: str) -> None:
    """Drop a database made by ``create_pg_database``."""
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# Per database URL: the statements that empty it (the schema does not change in a run).
_EMPTYING: dict[str, tuple[str, str]] = {}


async def _emptying_statements(connection: asyncpg.Connection) -> tuple[str, str]:
    """DELETEs of every table plus sequence restarts, and the TRUNCATE that does the same."""
    tables = [
        f'"{row["tablename"]}"'
        for row in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
    ]
    sequences = await connection.fetch(
        "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
    )
    deletes = "; ".join(
        [f"DELETE FROM {table}" for table in tables]
        + [f'ALTER SEQUENCE "{row["sequencename"]}" RESTART' for row in sequences]
    )
    return deletes, f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"


async def empty_pg_database(url: str) -> None:
    """Delete every row and restart the sequences (~2 ms; a TRUNCATE of all takes ~60 ms)."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        if url not in _EMPTYING:
            _EMPTYING[url] = await _emptying_statements(connection)
        deletes, truncate = _EMPTYING[url]
        try:
            async with connection.transaction():
                # Replica mode skips foreign-key triggers, so the DELETEs' order does not
                # matter (every table is emptied); it takes a superuser.
                await connection.execute("SET LOCAL session_replication_role = replica")
                await connection.execute(deletes)
        except asyncpg.InsufficientPrivilegeError:
            await connection.execute(truncate)
    finally:
        await connection.close()


def redis_available() -> None:
    """Skip or fail when Redis is not there."""
    host, _, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].partition(":")
    require_service("Redis", host, int(port or 6379))
