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
  insert until its frames are published;
- the sender's own copy of the frame is its acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import insert, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from videochat.db.models import Message
from videochat.exceptions import DATABASE_UNAVAILABLE, ServiceUnavailable, is_database_outage
from videochat.kit.clock import utcnow
from videochat.observability import metrics

log = structlog.get_logger(__name__)

# Publishes (room_id, frame) pairs in order; the hub's publish_many.
Publish = Callable[[Sequence[tuple[str, dict[str, Any]]]], Awaitable[None]]
# Builds the broadcast frame of a stored message (realtime.frames.message_frame).
FrameOf = Callable[[Message], dict[str, Any]]

# Locks in one global order (by lock key), so two instances' batches never deadlock.
_LOCK_ROOMS = text(
    "SELECT pg_advisory_lock(key) FROM "
    "(SELECT DISTINCT hashtextextended('videochat:room:' || room, 0) AS key "
    "FROM unnest(CAST(:rooms AS text[])) AS room ORDER BY key) AS keys"
)
_UNLOCK_ALL = text("SELECT pg_advisory_unlock_all()")
# Ids come back in the rows' order (SQLAlchemy's "insertmanyvalues" with sorting).
_INSERT = insert(Message).returning(Message.id, sort_by_parameter_order=True)


@dataclass(eq=False)
class _Pending:
    room_id: str
    user_id: str
    username: str
    content: str
    stored: asyncio.Future[Message] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class MessageWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        publish: Publish,
        frame_of: FrameOf,
        *,
        cluster: bool,
        max_batch: int = 500,
    ) -> None:
        self._engine = engine
        self._publish = publish
        self._frame_of = frame_of
        # Only needed (and only possible) when several instances share PostgreSQL.
        self._cluster = cluster and engine.dialect.name == "postgresql"
        # PostgreSQL gets a batch as one INSERT statement when it fits in one of
        # SQLAlchemy's "insertmanyvalues" pages: it commits or fails as a whole by itself.
        self._autocommit = (
            engine.dialect.name == "postgresql"
            and max_batch <= engine.dialect.insertmanyvalues_page_size
        )
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def post(self, *, room_id: str, user_id: str, username: str, content: str) -> Message:
        """Store a message, broadcast it, and return it once both are done."""
        pending = _Pending(room_id=room_id, user_id=user_id, username=username, content=content)
        self._pending.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="chat-writer")
        # Shielded: a sender that goes away must not cancel a batch others are in.
        return await asyncio.shield(pending.stored)

    async def stop(self) -> None:
        """Let the batch in progress and those waiting finish (shutdown)."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher

    async def _flush(self) -> None:
        while self._pending:
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
                if not isinstance(exc, SQLAlchemyError):
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
        # Fresh rows on every attempt: a failed attempt's rows were rolled back.
        rows = [
            {
                "room_id": p.room_id,
                "user_id": p.user_id,
                "username": p.username,
                "content": p.content,
                "created_at": utcnow(),
            }
            for p in batch
        ]
        async with self._engine.connect() as connection:
            if self._autocommit:
                # One round trip per statement instead of BEGIN, statement, COMMIT: the
                # batch is one INSERT (atomic on its own), and the advisory locks are
                # session locks, which outlive transactions anyway.
                await connection.execution_options(isolation_level="AUTOCOMMIT")
            if self._cluster:
                rooms = sorted({str(row["room_id"]) for row in rows})
                await connection.execute(_LOCK_ROOMS, {"rooms": rooms})
                await connection.commit()
                try:
                    messages = await self._commit(rows, connection)
                    await self._broadcast(messages)
                finally:
                    with contextlib.suppress(Exception):
                        await connection.execute(_UNLOCK_ALL)
                        await connection.commit()
            else:
                messages = await self._commit(rows, connection)
        if not self._cluster:
            await self._broadcast(messages)
        metrics.CHAT_MESSAGES.inc(len(messages))
        metrics.CHAT_WRITE_BATCH.observe(len(messages))
        for pending, message in zip(batch, messages, strict=True):
            if not pending.stored.done():
                pending.stored.set_result(message)

    @staticmethod
    async def _commit(rows: list[dict[str, Any]], connection: AsyncConnection) -> list[Message]:
        """Insert the batch in one statement and commit; the stored messages, in batch order.

        A Core INSERT ... RETURNING rather than the ORM's unit of work, which cost more
        CPU per message than everything else on the way to the sockets.
        """
        result = await connection.execute(_INSERT, rows)
        ids = result.scalars().all()
        await connection.commit()
        return [
            Message(id=id_, edited_at=None, deleted_at=None, **row)
            for id_, row in zip(ids, rows, strict=True)
        ]

    async def _broadcast(self, messages: list[Message]) -> None:
        in_order = sorted(messages, key=lambda message: message.id)
        await self._publish([(message.room_id, self._frame_of(message)) for message in in_order])


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    error = (
        ServiceUnavailable("the message could not be stored; try again")
        if isinstance(exc, SQLAlchemyError)
        else exc
    )
    for pending in batch:
        if not pending.stored.done():
            pending.stored.set_exception(error)
            pending.stored.exception()  # retrieved here; a sender that left never awaits it
