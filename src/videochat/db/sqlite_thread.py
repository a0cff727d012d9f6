"""A thread of its own with one long-lived sqlite3 connection, for a hot write path.

Through SQLAlchemy and aiosqlite a small transaction costs a pool checkout, then one
hop to aiosqlite's thread for each of begin, statement, fetch and commit, then the
connection's reset on return: several hundred microseconds of a core for a batch of
one or two chat messages. Here the caller hands a whole unit of work (a plain
function of the connection) to the thread in one hop, and the connection stays open
for the life of the process.

The connection gets the engine's pragmas (``db.engine.sqlite_pragmas``: WAL,
busy_timeout, foreign keys) and runs in autocommit mode, so the function begins and
commits its own transaction. sqlite3's errors come back wrapped as SQLAlchemy's
(``OperationalError`` for a locked or missing database, ``IntegrityError`` for a
constraint), so callers handle them as they handle any other database error.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from videochat.db.engine import sqlite_pragmas

T = TypeVar("T")


def sqlite_file(url: URL) -> str | None:
    """The database file of a SQLite URL; None for another backend or an in-memory one
    (a second connection would see a database of its own)."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in {"", ":memory:"} or database.startswith("file:") or url.query:
        return None
    return database


class SqliteThread:
    def __init__(self, path: str, *, name: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._connection: sqlite3.Connection | None = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` in the thread; sqlite3 errors as SQLAlchemy's."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._connection is None:
                connection = sqlite3.connect(self._path, timeout=30, isolation_level=None)
                sqlite_pragmas(connection, None)
                self._connection = connection
            return work(self._connection)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(
                None, None, exc, sqlite3.Error, hide_parameters=True, dialect=None
            ) from exc

    async def close(self) -> None:
        """Close the connection and end the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def rollback_quietly(connection: sqlite3.Connection) -> None:
    """End a transaction a failed statement left open (nothing to do if none is)."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
