"""Async engine and session factory built from settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from videochat.config import Settings

# Bytes a SQLite WAL file keeps when the WAL starts afresh.
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024
# A new file's page size (SQLite's default is 4096). A chat batch writes whole pages to
# the WAL, one leaf of the (room_id, id) index per room it touches, so the page size is
# the bytes every commit writes and every checkpoint copies: with 1,024 a message cost
# 2.6 KB of WAL instead of 6.6 and ~10% less CPU to insert (batches of 16 in 100 rooms,
# the real schema), and at 113,000 deliveries/s the checkpoints' stalls took the p99
# from 35-63 ms to 20-38 (docs/BENCHMARKS.md). History reads cost the same; the file is
# ~13% larger. A file made before keeps its size (WAL mode fixes it: a VACUUM outside
# WAL mode would change it).
SQLITE_PAGE_SIZE = 1024


def sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout queues writers instead of
    # failing with "database is locked"; SQLite leaves foreign keys off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # (before WAL: a new file only)
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # When the WAL starts afresh, its file is cut back to this size: otherwise the file
    # keeps its largest size for good, and the chat writer, which reads the file's size
    # as what the WAL holds (db/sqlite_thread.py), held every write back behind every
    # checkpoint once the file had passed its limit (a 55 ms stall twice a second at
    # 60,000 deliveries/s).
    cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for the configured URL (SQLite file, SQLite memory or PostgreSQL)."""
    url = make_url(settings.resolved_database_url)
    # Parameters hold stream keys and the like: never in logs or error messages.
    kwargs: dict[str, Any] = {"echo": settings.database.echo, "hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in {"", ":memory:"}:
            # The prototype's "memory" backend: one shared connection, or each
            # session would see its own empty database.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            from pathlib import Path

            Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs.update(connect_args={"timeout": 30})
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    kwargs.update(
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        pool_timeout=settings.database.pool_timeout_seconds,
        pool_pre_ping=True,
    )
    return create_async_engine(url, **kwargs)


def create_sessionmaker(
    engine: AsyncEngine, *, cache: object | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (and carry the read cache)."""
    from videochat.kit.cache import SESSION_INFO_KEY

    info = {SESSION_INFO_KEY: cache} if cache is not None else None
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


async def ping(engine: AsyncEngine) -> None:
    """Run a trivial query; raises when the database cannot be reached."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
