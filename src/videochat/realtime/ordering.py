"""One writer per room at a time, so a room's broadcast order is its id order.

Ids come from the database at insert; without this, two messages inserted
concurrently could be committed and broadcast in the opposite order of their ids,
and a client resuming with ``?since=`` would skip the one it never saw. Within an
instance an asyncio lock per room is enough. With several instances on PostgreSQL
a session-level advisory lock per room is held from insert until the frame has been
published to Redis (whose channel order every instance then follows).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from videochat.kit.locks import KeyedLock

_LOCK = text("SELECT pg_advisory_lock(hashtextextended(:key, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")


class RoomOrder:
    def __init__(self, engine: AsyncEngine, *, cluster: bool) -> None:
        self._engine = engine
        self._local = KeyedLock()
        # Only needed (and only possible) when several instances share PostgreSQL.
        self._cluster = cluster and engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def writing(self, room_id: str) -> AsyncIterator[AsyncSession]:
        """A session to store one message of the room; publish before leaving the block."""
        async with self._local.hold(room_id):
            if not self._cluster:
                async with AsyncSession(self._engine, expire_on_commit=False) as session:
                    yield session
                return
            key = f"videochat:room:{room_id}"
            async with self._engine.connect() as connection:
                await connection.execute(_LOCK, {"key": key})
                await connection.commit()  # the advisory lock outlives the transaction
                try:
                    async with AsyncSession(bind=connection, expire_on_commit=False) as session:
                        yield session
                finally:
                    await connection.execute(_UNLOCK, {"key": key})
                    await connection.commit()
