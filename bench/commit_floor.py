"""The database's own floor under the latency at a moderate load: one lone commit.

At 500 deliveries/s (50 messages/s in rooms of 10) every message is a batch of its own,
so videochat's latency over the bare server's includes one commit of one row. Here the
same kind of commit is timed on its own, on the deployment's database and disk, paced
like those messages: a row of the message's shape inserted and committed, ``count``
times, ``gap`` seconds apart. On PostgreSQL that is a WAL flush per commit (the message
must be durable before anyone sees it); SQLite in WAL mode with ``synchronous=NORMAL``
writes to the OS and does not sync at commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from videochat.db.engine import sqlite_pragmas

_TABLE = "bench_commit_probe"
_CREATE = (
    f"CREATE TABLE {_TABLE} (id {{id}}, room_id TEXT NOT NULL, user_id TEXT, "
    "username TEXT NOT NULL, content TEXT NOT NULL, created_at TEXT NOT NULL)"
)
_ROW = ("room", "user", "someone", "x" * 100, "2026-01-01T00:00:00.000000")
# Commits timed, and the pause after each (the moderate load's 50 messages/s).
COUNT, GAP_SECONDS = 300, 0.02


async def postgres(dsn: str, *, count: int = COUNT, gap: float = GAP_SECONDS) -> dict[str, Any]:
    """Lone INSERT ... RETURNING id commits (autocommit, as the writer runs them)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(_CREATE.format(id="BIGSERIAL PRIMARY KEY"))
        insert = (
            f"INSERT INTO {_TABLE} (room_id, user_id, username, content, created_at) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id"
        )
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await connection.fetchval(insert, *_ROW)
            times.append(time.perf_counter() - started)
            await asyncio.sleep(gap)
        await connection.execute(f"DROP TABLE {_TABLE}")
    finally:
        await connection.close()
    return summary(times)


async def sqlite(path: Path, *, count: int = COUNT, gap: float = GAP_SECONDS) -> dict[str, Any]:
    """Lone BEGIN IMMEDIATE, INSERT, COMMIT on a file beside the server's, with its pragmas."""
    return await asyncio.to_thread(_sqlite_commits, path, count, gap)


def _sqlite_commits(path: Path, count: int, gap: float) -> dict[str, Any]:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        sqlite_pragmas(connection, None)
        connection.execute(_CREATE.format(id="INTEGER PRIMARY KEY"))
        insert = (
            f"INSERT INTO {_TABLE} (room_id, user_id, username, content, created_at) "
            "VALUES (?, ?, ?, ?, ?)"
        )
        times = []
        for _ in range(count):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(insert, _ROW)
            connection.execute("COMMIT")
            times.append(time.perf_counter() - started)
            time.sleep(gap)
    finally:
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return summary(times)


def summary(seconds: list[float]) -> dict[str, Any]:
    """p50, p99 and max in ms, and how many commits were timed."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "commits": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }
