"""A thread of its own with one long-lived sqlite3 connection, for a hot write path.

Through SQLAlchemy and aiosqlite a small transaction costs a pool checkout, then one
hop to aiosqlite's thread for each of begin, statement, fetch and commit, then the
connection's reset on return: several hundred microseconds of a core for a batch of
one or two chat messages. Here the caller hands a whole unit of work (a plain
function of the connection) to the thread in one hop, and the connection stays open
for the life of the process. ``run_inline_first`` goes further: the work runs on the
event loop, on a second connection that never waits for the lock, whenever the lock
is free.

The connection gets the engine's pragmas (``db.engine.sqlite_pragmas``: WAL,
busy_timeout, foreign keys) and runs in autocommit mode, so the function begins and
commits its own transaction. sqlite3's errors come back wrapped as SQLAlchemy's
(``OperationalError`` for a locked or missing database, ``IntegrityError`` for a
constraint), so callers handle them as they handle any other database error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, StatementError

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


# The inline connection never checkpoints on its own (a checkpoint syncs the file):
# the thread runs a passive checkpoint after this many inline commits instead, beside
# the writes. A WAL starts afresh only after a checkpoint that no write ran beside, so
# under steady load it grows: past this size the writes wait behind the checkpoint
# (writes queued behind every checkpoint made the p99 spike: 40 ms at 32,000
# deliveries/s against 10 ms without checkpoints). A checkpoint shares the server's
# core with the loop, so a long one is a latency spike: at 60,000 deliveries/s a commit
# of 16 messages in 16 rooms writes ~50 pages, and a checkpoint every 200 commits took
# 30-55 ms (p99 71 ms); every 50, p99 44 ms for ~6% more CPU at that rate, none at
# 10,000/s. The passive checkpoints copy most of the WAL as it grows, but a held-back
# one at 64 MB still stalled the writes for up to 45-115 ms (one every few seconds from
# ~20,000 deliveries/s); at 8 MB, more of them and shorter: interleaved, three rounds,
# max 23-25 ms against 44-53 at 25,000/s (p99 16-18 against 21-28 ms), 35-72 against
# 71-116 at 32,000/s, CPU per delivery within the noise.
CHECKPOINT_EVERY = 50
WAL_LIMIT_BYTES = 8 * 1024 * 1024


class SqliteThread:
    def __init__(self, path: str, *, name: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._connection: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._inline_commits = 0
        self._checkpoint: asyncio.Future[None] | None = None
        self._checkpoint_blocks = False  # writes wait behind the running checkpoint

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` in the thread; sqlite3 errors as SQLAlchemy's."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    async def run_inline_first(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` on the event loop's own connection when the write lock is
        free, else in the thread (``work`` must roll back whatever it began when it fails).

        A hop to the thread and back (a futex wake, a context switch each way, a wake-up
        of the loop) cost more CPU than a small batch's insert and commit, which only
        write to the WAL in the page cache (synchronous=NORMAL: no fsync at commit).
        Nothing here can block the loop for long: the connection never waits for the
        lock (busy_timeout 0: another writer holds it, so the batch goes to the thread,
        which waits) and never checkpoints (the thread does, every CHECKPOINT_EVERY
        commits; the work waits behind it only when the WAL has grown past
        WAL_LIMIT_BYTES).
        """
        checkpointing = self._checkpoint is not None and not self._checkpoint.done()
        if checkpointing and self._checkpoint_blocks:
            # Behind the checkpoint: with no write beside it, it copies the whole WAL,
            # which then starts afresh.
            return await self.run(work)
        connection = self._inline or self._open_inline()
        try:
            result = work(connection)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise _as_sqlalchemy(exc) from exc
            return await self.run(work)
        except sqlite3.Error as exc:
            raise _as_sqlalchemy(exc) from exc
        self._inline_commits += 1
        if self._inline_commits >= CHECKPOINT_EVERY and not checkpointing:
            self._inline_commits = 0
            self._checkpoint_blocks = self._wal_bytes() > WAL_LIMIT_BYTES
            loop = asyncio.get_running_loop()
            self._checkpoint = loop.run_in_executor(self._executor, self._call, _checkpoint)
        return result

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self._path}-wal").st_size
        except OSError:
            return 0

    def _open_inline(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        sqlite_pragmas(connection, None)
        connection.execute("PRAGMA busy_timeout=0")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        self._inline = connection
        return connection

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._connection is None:
                connection = sqlite3.connect(self._path, timeout=30, isolation_level=None)
                sqlite_pragmas(connection, None)
                self._connection = connection
            return work(self._connection)
        except sqlite3.Error as exc:
            raise _as_sqlalchemy(exc) from exc

    async def close(self) -> None:
        """Close the connection and end the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    def _close(self) -> None:
        for connection in (self._connection, self._inline):
            if connection is not None:
                connection.close()
        self._connection = self._inline = None


def _as_sqlalchemy(exc: sqlite3.Error) -> StatementError:
    """sqlite3's error as SQLAlchemy's (OperationalError, IntegrityError...)."""
    return DBAPIError.instance(None, None, exc, sqlite3.Error, hide_parameters=True, dialect=None)


def _checkpoint(connection: sqlite3.Connection) -> None:
    # PASSIVE: copies what it can without waiting for readers or writers.
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def rollback_quietly(connection: sqlite3.Connection) -> None:
    """End a transaction a failed statement left open (nothing to do if none is)."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
