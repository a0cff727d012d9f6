"""Storing chat messages with group commit, and broadcasting them in id order.

One commit per message made the database the ceiling of a busy server: every
message paid a transaction and an fsync while everything else waited for it. Here
messages sent while a batch is being stored wait for the next batch, which stores
all of them in one transaction. An idle server still stores each message at once
(a batch of one); a busy one stores hundreds per commit. No timer is involved.

Guarantees (docs/PROTOCOL.md, "Durability"):
- a message is committed before anyone receives it, so what was seen survives a
  crash;
- a room's messages are broadcast in the order of their ids (the history's order),
  so a client resuming with ``?since=`` never skips one. One flusher per instance
  stores and publishes batch after batch; with several instances on PostgreSQL each
  batch holds a session-level advisory lock on every room it touches from before its
  insert until its frames are published (and released by the next batch's statement
  when that batch goes at once, or else before the writer waits for anything);
- the sender's own copy of the frame is its acknowledgement.

What a batch costs was the ceiling of a busy SQLite server (a profile at 1,000
messages/s: half the samples in the store path, batches of one or two): a pool checkout,
a hop to aiosqlite's thread for each of begin, INSERT, fetch and commit, and the
connection's reset on return. So:
- on a SQLite file, the batch is one function run on a connection that stays open:
  on the event loop when the write lock is free (a batch's insert and commit cost less
  than the hop to a thread and back), else in a writer thread of its own
  (``db.sqlite_thread``), which waits for the lock;
- on PostgreSQL the writer holds one connection while messages keep coming (no
  checkout, pre-ping and reset per batch), and gives it back to the pool after
  ``HOLD_IDLE_SECONDS`` without a batch, or after any error;
- under load (messages arrive, on average over the last few, at least twice per
  ``window``) a batch waits up to ``window`` for more messages to join it, and no
  longer than it takes ``BATCH_ENOUGH`` to be there; a quiet server stores a message at
  once. A commit costs about as much CPU as storing and broadcasting a few messages
  (SQLite's WAL frames and their checksums, the locks, the hop to the thread, or
  PostgreSQL's round trip and WAL flush), so at 1,000 messages/s batches of ~12 instead
  of ~4 cut the server's CPU per delivery by a fifth (docs/BENCHMARKS.md). The rate,
  not the time since the last batch, decides: at 50 messages/s (one every 20 ms) no
  message waits, where the old rule (wait when the last batch ended less than a window
  ago) held a few of them for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from asyncpg import PostgresError
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import TypeEngine

from videochat.db.models import Message
from videochat.db.sqlite_thread import SqliteThread, rollback_quietly, sqlite_file
from videochat.exceptions import DATABASE_UNAVAILABLE, ServiceUnavailable, is_database_outage
from videochat.kit.clock import utcnow
from videochat.observability import metrics

log = structlog.get_logger(__name__)

# Publishes (room_id, frame) pairs in order; the hub's publish_many.
Publish = Callable[[Sequence[tuple[str, dict[str, Any]]]], Awaitable[None]]
# Builds the broadcast frame of a stored message (realtime.frames.message_frame).
FrameOf = Callable[["NewMessage"], dict[str, Any]]

# Locks in one global order (by lock key), so two instances' batches never deadlock.
_LOCK_ROOMS = (
    "SELECT pg_advisory_lock(key) FROM "
    "(SELECT DISTINCT hashtextextended('videochat:room:' || room, 0) AS key "
    "FROM unnest($1::text[]) AS room ORDER BY key) AS keys"
)
# The lock goes with the batch's INSERT (_PG_LOCK_AND_INSERT), the unlock after the
# publish; both on asyncpg's own connection: through SQLAlchemy a lock and an unlock
# cost ~290 µs of CPU, directly ~120 µs, and a batch of two instances' is a few messages.
_UNLOCK_ALL = "SELECT pg_advisory_unlock_all()"
# Ids come back in the rows' order (SQLAlchemy's "insertmanyvalues" with sorting).
_INSERT = insert(Message).returning(Message.id, sort_by_parameter_order=True)
# The columns a new message sets, in the order of the SQLite writer's parameters.
_COLUMNS = ("room_id", "user_id", "username", "content", "created_at")
_SQLITE_INSERT = (
    f"INSERT INTO {Message.__tablename__} ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_COLUMNS))})"
)
# PostgreSQL: a batch of any size is one INSERT of five arrays, sent on asyncpg's own
# connection (a prepared statement it caches): no SQLAlchemy statement to compile and no
# result to wrap. The rows go in the arrays' order, one nextval each, so their ids
# ascend in that order: the sorted ids are the rows' ids.
_PG_BATCH = (
    f"INSERT INTO {Message.__tablename__} ({', '.join(_COLUMNS)}) "
    "SELECT room, author, name, body, at FROM unnest("
    "$1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]"
    ") WITH ORDINALITY AS batch(room, author, name, body, at, n)"
)
_PG_INSERT = f"{_PG_BATCH} ORDER BY n RETURNING id"
# Several instances: the same INSERT, which first takes the batch's rooms' locks (the
# rooms are the first array). The filter on the locks' count is evaluated before any row
# passes, so every lock is held before the first id is drawn; one round trip, not two.
_PG_LOCK_AND_INSERT = (
    f"WITH locks AS MATERIALIZED ({_LOCK_ROOMS}) "
    f"{_PG_BATCH} WHERE (SELECT count(*) FROM locks) > 0 ORDER BY n RETURNING id"
)
# The same, releasing the previous batch's rooms first: on a busy server the next batch
# is ready, with no wait, once a batch is published, and its statement carries the
# unlock (one PostgreSQL round trip a batch instead of two: ~100 µs of the server's CPU
# and some of PostgreSQL's). The unlock's one-time filter runs before the locks' scan
# starts, as the locks' runs before the INSERT's.
_PG_UNLOCK_LOCK_AND_INSERT = (
    "WITH unlocked AS MATERIALIZED (SELECT pg_advisory_unlock_all()), "
    f"locks AS MATERIALIZED ({_LOCK_ROOMS} WHERE (SELECT count(*) FROM unlocked) > 0) "
    f"{_PG_BATCH} WHERE (SELECT count(*) FROM locks) > 0 ORDER BY n RETURNING id"
)
# What a statement that ran and failed raises (a bad row, say), through SQLAlchemy or
# straight from asyncpg (_PG_INSERT); a lost connection is is_database_outage's.
_STATEMENT_ERRORS = (SQLAlchemyError, PostgresError)
# A batch under load waits this long for more messages (bounded added latency).
WINDOW_SECONDS = 0.012
# With several instances (PostgreSQL and Redis), twice as long. Each instance stores only
# its own sockets' messages (half of them with two), so a window's batch is smaller, and
# a batch costs more there: its statement takes the rooms' locks, and a batch that waits
# first releases the last one's in a statement of its own. At 10,000 deliveries/s on two
# instances, 12 -> 24 ms halved the statements (~285 -> ~150/s) and cut the CPU per
# delivery (server, PostgreSQL, Redis) by about an eighth, for ~7 ms more at the median
# (docs/BENCHMARKS.md). No message waits below ~80 messages/s on an instance.
CLUSTER_WINDOW_SECONDS = 0.024
# A waiting batch stops waiting once it holds this many messages: a commit's cost is
# spread thin enough (12-24 per commit cost the same CPU per delivery; 4 cost a fifth more).
BATCH_ENOUGH = 16
# How fast the estimate of the gap between messages follows the latest gap (an EWMA):
# a burst of three close messages is enough to start batching.
GAP_WEIGHT = 0.25
# A gap longer than this counts as this (a quiet minute must not take minutes to forget).
GAP_CAP_SECONDS = 1.0
# The held PostgreSQL connection goes back to the pool after this long without a batch
# (the pool's pre-ping then checks it before the next one).
HOLD_IDLE_SECONDS = 5.0


@dataclass(slots=True, frozen=True)
class NewMessage:
    """A message just stored, as its frame and its sender see it: the ORM's instance
    bookkeeping (a few per cent of a busy server's CPU) buys nothing here."""

    id: int
    room_id: str
    user_id: str
    username: str
    content: str
    created_at: datetime
    edited_at: None = None
    deleted_at: None = None


@dataclass(eq=False, slots=True)
class _Pending:
    room_id: str
    user_id: str
    username: str
    content: str
    arrived: float  # the loop's clock
    stored: asyncio.Future[NewMessage]


class MessageWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        publish: Publish,
        frame_of: FrameOf,
        *,
        cluster: bool,
        max_batch: int = 500,
        window: float | None = None,
    ) -> None:
        self._engine = engine
        self._publish = publish
        self._frame_of = frame_of
        # Only needed (and only possible) when several instances share PostgreSQL.
        self._cluster = cluster and engine.dialect.name == "postgresql"
        # PostgreSQL gets a batch as one INSERT statement (_PG_INSERT): it commits or
        # fails as a whole by itself, on a connection held in autocommit.
        self._postgres = engine.dialect.name == "postgresql"
        self._max_batch = max_batch
        if window is None:
            window = CLUSTER_WINDOW_SECONDS if self._cluster else WINDOW_SECONDS
        self._window = window
        self._enough = min(BATCH_ENOUGH, max_batch)
        # While a batch waits for company: settled when it has enough (or by the timer).
        self._company: asyncio.Future[None] | None = None
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        # The average gap between two messages (EWMA), and when the last one arrived.
        self._gap = window
        self._last_arrival = -math.inf
        # A SQLite file: batches go to a writer thread with its own connection.
        path = sqlite_file(engine.url)
        self._sqlite = SqliteThread(path, name="chat-writer") if path is not None else None
        # created_at as SQLAlchemy stores it (UTCDateTime on this dialect), for the thread.
        created_at: TypeEngine[Any] = Message.__table__.c.created_at.type
        self._created_at_param: Callable[[Any], Any] = created_at.bind_processor(
            engine.dialect
        ) or (lambda value: value)
        # PostgreSQL: the connection held between batches (None: take one from the pool).
        self._held: AsyncConnection | None = None
        # Several instances: the held connection still locks the last batch's rooms.
        self._rooms_held = False
        self._held_until = 0.0

    async def post(self, *, room_id: str, user_id: str, username: str, content: str) -> NewMessage:
        """Store a message, broadcast it, and return it once both are done."""
        return await self.enqueue(
            room_id=room_id, user_id=user_id, username=username, content=content
        )

    def enqueue(
        self, *, room_id: str, user_id: str, username: str, content: str
    ) -> asyncio.Future[NewMessage]:
        """Hand a message to the next batch; the future settles once it is stored and
        broadcast. Messages are stored in the order they were handed in."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        gap = min(now - self._last_arrival, GAP_CAP_SECONDS)
        self._gap += (gap - self._gap) * GAP_WEIGHT
        self._last_arrival = now
        pending = _Pending(room_id, user_id, username, content, now, loop.create_future())
        self._pending.append(pending)
        if self._company is not None and len(self._pending) >= self._enough:
            _settle(self._company)  # the waiting batch has company enough: store it now
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="chat-writer")
        # A sender that goes away cancels only its own future (no shield needed, and none
        # paid for per message): the flusher stores the batch and skips futures done.
        return pending.stored

    async def stop(self) -> None:
        """Let the batch in progress and those waiting finish (shutdown)."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if self._held is not None:
            with contextlib.suppress(Exception):
                await self._held.close()
            self._held = None
        if self._sqlite is not None:
            await self._sqlite.close()

    async def _flush(self) -> None:
        while True:
            await self._flush_pending()
            if not self._rooms_held:
                # (Nothing pending: a message enqueued from here starts a new flusher.)
                return
            await self._release_rooms()  # messages arriving meanwhile: another round

    async def _flush_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            if len(self._pending) < self._enough and 2 * self._gap <= self._window:
                # Messages keep coming: a moment's wait makes this batch several. But no
                # message waits more than the window since it arrived, and the wait ends
                # as soon as the batch has enough company (BATCH_ENOUGH): under heavy
                # load the next batch filled up while this one was stored, and waits
                # little or not at all (a full window per batch added its whole length
                # to every message's latency at any rate: p99 past 50 ms from 23,000
                # deliveries/s with the server's core half idle).
                wait = self._pending[0].arrived + self._window - loop.time()
                if wait > 0 and self._rooms_held:
                    # Never hold other instances' rooms while waiting.
                    await self._release_rooms()
                    continue  # (messages came meanwhile: decide again)
                if wait > 0:
                    self._company = loop.create_future()
                    timer = loop.call_later(wait, _settle, self._company)
                    try:
                        await self._company
                    finally:
                        timer.cancel()
                        self._company = None
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self._store_and_publish(batch)
            except Exception as exc:
                if is_database_outage(exc):
                    # Not acknowledged: each sender gets an `unavailable` error and keeps
                    # its text (a commit cut off mid-way may still have landed).
                    log.warning("chat.batch_unavailable", size=len(batch))
                    _fail(batch, ServiceUnavailable(DATABASE_UNAVAILABLE))
                    continue
                if not isinstance(exc, _STATEMENT_ERRORS):
                    log.exception("chat.flush_failed", size=len(batch))
                    _fail(batch, exc)
                    continue
                if len(batch) == 1:
                    _fail(batch, exc)
                    continue
                # One bad row (its room deleted meanwhile) must not sink the others.
                log.warning("chat.batch_failed", size=len(batch), error=str(exc)[:200])
                for pending in batch:
                    try:
                        await self._store_and_publish([pending])
                    except Exception as single_exc:
                        _fail([pending], single_exc)

    async def _store_and_publish(self, batch: list[_Pending]) -> None:
        # Fresh rows on every attempt: a failed attempt's rows were rolled back. One time
        # for the whole batch (one commit stores it): converted for the database once,
        # and written into the frames once (kit.clock.isoformat keeps the last).
        now = utcnow()
        rows = [
            {
                "room_id": p.room_id,
                "user_id": p.user_id,
                "username": p.username,
                "content": p.content,
                "created_at": now,
            }
            for p in batch
        ]
        if self._sqlite is not None:
            ids = await self._sqlite.run_inline_first(partial(self._insert_sqlite, rows))
            messages = _messages(ids, rows)
            await self._broadcast(messages)
        else:
            async with self._connection() as connection:
                if not self._postgres:
                    messages = await self._commit(rows, connection)
                elif self._cluster:
                    driver = await _driver(connection)
                    statement = (
                        _PG_UNLOCK_LOCK_AND_INSERT if self._rooms_held else _PG_LOCK_AND_INSERT
                    )
                    # Held from here (even a failed statement may have taken some), and
                    # released by the next batch's statement or by _release_rooms; after
                    # a failure, by dropping the connection (below, in _connection).
                    self._rooms_held = True
                    messages = await _insert_pg(driver, statement, rows)
                    await self._broadcast(messages)
                else:
                    messages = await _insert_pg(await _driver(connection), _PG_INSERT, rows)
            if not self._cluster:
                await self._broadcast(messages)
        metrics.CHAT_MESSAGES.inc(len(messages))
        metrics.CHAT_WRITE_BATCH.observe(len(messages))
        for pending, message in zip(batch, messages, strict=True):
            if not pending.stored.done():
                pending.stored.set_result(message)

    def _insert_sqlite(
        self, rows: list[dict[str, Any]], connection: sqlite3.Connection
    ) -> list[int]:
        """The batch's insert and commit, in the SQLite writer thread; the new ids in order.

        One row per statement: the ids come from ``lastrowid`` (RETURNING's order is not
        guaranteed by SQLite), and a prepared statement run again costs a few µs.
        """
        # (The batch's one time: see _store_and_publish.)
        created_at = self._created_at_param(rows[0]["created_at"])
        params = [
            (row["room_id"], row["user_id"], row["username"], row["content"], created_at)
            for row in rows
        ]
        cursor = connection.cursor()
        try:
            # IMMEDIATE: take the write lock now (waiting up to busy_timeout for another
            # writer), not halfway through the batch.
            cursor.execute("BEGIN IMMEDIATE")
            ids = []
            for values in params:
                cursor.execute(_SQLITE_INSERT, values)
                ids.append(int(cursor.lastrowid or 0))
            cursor.execute("COMMIT")
        except BaseException:
            rollback_quietly(connection)
            raise
        finally:
            cursor.close()
        return ids

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """The connection for a batch: held between batches on PostgreSQL, pooled otherwise."""
        if not self._postgres:
            # (An in-memory SQLite database has one connection, shared with everyone.)
            async with self._engine.connect() as pooled:
                yield pooled
            return
        loop = asyncio.get_running_loop()
        if self._held is not None and loop.time() > self._held_until:
            idle, self._held = self._held, None
            with contextlib.suppress(Exception):
                await idle.close()  # unused for a while: back to the pool
        connection = self._held
        if connection is None:
            connection = await self._engine.connect()
            # One round trip per statement instead of BEGIN, statement, COMMIT: the
            # batch is one INSERT (atomic on its own), and the advisory locks are
            # session locks, which outlive transactions anyway.
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            self._held = connection
        try:
            yield connection
        except BaseException:
            # Whatever failed (a dead connection, a bad row), start afresh next time.
            await self._drop(connection)
            raise
        self._held_until = loop.time() + HOLD_IDLE_SECONDS

    async def _release_rooms(self) -> None:
        """Unlock the rooms the last batch locked (several instances), before this
        instance waits for anything: other instances' batches wait for them."""
        if not self._rooms_held:
            return
        connection = self._held
        self._rooms_held = False
        if connection is None:
            return  # (dropped: closing the connection released its session's locks)
        try:
            await (await _driver(connection)).execute(_UNLOCK_ALL)
        except Exception:
            # The connection kept must not hold other instances' rooms: closing it
            # releases its session's locks.
            await self._drop(connection)

    async def _drop(self, connection: AsyncConnection) -> None:
        """Close a connection for good (not back to the pool as it is)."""
        if self._held is connection:
            self._held = None
            self._rooms_held = False  # (its session's locks end with it)
        with contextlib.suppress(Exception):
            await connection.invalidate()
        with contextlib.suppress(Exception):
            await connection.close()

    async def _commit(
        self, rows: list[dict[str, Any]], connection: AsyncConnection
    ) -> list[NewMessage]:
        """Insert the batch in one statement and commit (an in-memory SQLite database);
        the stored messages, in batch order.

        A Core INSERT ... RETURNING rather than the ORM's unit of work, which cost more
        CPU per message than everything else on the way to the sockets.
        """
        result = await connection.execute(_INSERT, rows)
        ids = result.scalars().all()
        await connection.commit()
        return _messages(ids, rows)

    async def _broadcast(self, messages: list[NewMessage]) -> None:
        in_order = sorted(messages, key=lambda message: message.id)
        await self._publish([(message.room_id, self._frame_of(message)) for message in in_order])


async def _insert_pg(driver: Any, statement: str, rows: list[dict[str, Any]]) -> list[NewMessage]:
    """Run _PG_INSERT or _PG_LOCK_AND_INSERT on asyncpg's connection: the stored
    messages, in batch order (autocommit: the statement commits by itself)."""
    columns = [[row[column] for row in rows] for column in _COLUMNS]
    records = await driver.fetch(statement, *columns)
    return _messages(sorted(record[0] for record in records), rows)


async def _driver(connection: AsyncConnection) -> Any:
    """The DB-API driver's own connection under a SQLAlchemy one (asyncpg's, here)."""
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None:
        raise RuntimeError("the connection has no driver connection")
    return driver


def _messages(ids: Sequence[int], rows: list[dict[str, Any]]) -> list[NewMessage]:
    return [NewMessage(id_, **row) for id_, row in zip(ids, rows, strict=True)]


def _settle(waiting: asyncio.Future[None]) -> None:
    if not waiting.done():
        waiting.set_result(None)


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    error = (
        ServiceUnavailable("the message could not be stored; try again")
        if isinstance(exc, _STATEMENT_ERRORS)
        else exc
    )
    for pending in batch:
        if not pending.stored.done():
            pending.stored.set_exception(error)
            pending.stored.exception()  # retrieved here; a sender that left never awaits it
