"""Migrations run on databases that already hold data, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from videochat.config import get_settings
from videochat.db.engine import sqlite_pragmas
from videochat.db.migrate import alembic_config, upgrade_to_head

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
async def blank_engine(blank_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(blank_database_url)
    if engine.dialect.name == "sqlite":
        # As the app opens its connections: foreign keys enforced (and their actions run).
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    yield engine
    await engine.dispose()


async def _upgrade_to(engine: AsyncEngine, revision: str) -> None:
    def upgrade(connection: Connection) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(text(sql), params)]


async def _seed(
    engine: AsyncEngine, *, users: tuple[str, ...], authors: tuple[str, ...], liked: int
) -> list[int]:
    """Users, a room 'r1' of the first, one message per author (``hello 1``...) and
    the first user's reaction to message number ``liked``; the messages' ids."""
    async with engine.begin() as connection:
        for user in users:
            await connection.execute(
                text(
                    "INSERT INTO users (id, username, is_guest, is_admin, joined_at) "
                    "VALUES (:id, :id, true, false, :at)"
                ),
                {"id": user, "at": NOW},
            )
        await connection.execute(
            text(
                "INSERT INTO rooms (id, name, owner_id, created_at, is_private) "
                "VALUES ('r1', 'Room', :owner, :at, false)"
            ),
            {"owner": users[0], "at": NOW},
        )
        ids = []
        for number, author in enumerate(authors, start=1):
            inserted = await connection.execute(
                text(
                    "INSERT INTO messages (room_id, user_id, username, content, created_at) "
                    "VALUES ('r1', :author, :author, :content, :at) RETURNING id"
                ),
                {"author": author, "content": f"hello {number}", "at": NOW},
            )
            ids.append(inserted.scalar_one())
        await connection.execute(
            text(
                "INSERT INTO message_reactions (message_id, user_id, emoji, created_at) "
                "VALUES (:id, :user, '👍', :at)"
            ),
            {"id": ids[liked - 1], "user": users[0], "at": NOW},
        )
    return ids


async def test_messages_lose_the_author_key_and_index_but_no_data(
    blank_engine: AsyncEngine,
) -> None:
    """0011 drops messages.user_id's foreign key and index. On SQLite that rebuilds the
    table, and dropping a table with foreign keys enforced deletes its rows first, with
    their ON DELETE actions: the reactions (ON DELETE CASCADE) must come through."""
    engine = blank_engine
    await _upgrade_to(engine, "0010")
    ids = await _seed(engine, users=("alice", "bob"), authors=("alice", "bob", "alice"), liked=2)

    await upgrade_to_head(engine)

    messages = await _rows(engine, "SELECT id, user_id, content FROM messages ORDER BY id")
    assert messages == [
        (ids[0], "alice", "hello 1"),
        (ids[1], "bob", "hello 2"),
        (ids[2], "alice", "hello 3"),
    ]
    reactions = await _rows(engine, "SELECT message_id, user_id, emoji FROM message_reactions")
    assert reactions == [(ids[1], "alice", "👍")]
    async with engine.connect() as connection:
        keys, indexes = await connection.run_sync(
            lambda sync: (
                inspect(sync).get_foreign_keys("messages"),
                {index["name"] for index in inspect(sync).get_indexes("messages")},
            )
        )
    assert [key["referred_table"] for key in keys] == ["rooms"]
    assert indexes == {"ix_messages_room_id_id"}

    async with engine.begin() as connection:
        # An ended account takes nothing with it (and holds nothing back) any more.
        await connection.execute(text("DELETE FROM users WHERE id = 'bob'"))
        new_id = (
            await connection.execute(
                text(
                    "INSERT INTO messages (room_id, user_id, username, content, created_at) "
                    "VALUES ('r1', 'alice', 'alice', 'after', :at) RETURNING id"
                ),
                {"at": NOW},
            )
        ).scalar_one()
    assert new_id > ids[2]  # ids still grow: they are the room's order
    kept = await _rows(engine, "SELECT user_id, username FROM messages WHERE id = :id", id=ids[1])
    assert kept == [("bob", "bob")]
    if engine.dialect.name == "sqlite":
        assert await _rows(engine, "PRAGMA foreign_key_check") == []
        # The app's connections still enforce foreign keys after a migration.
        assert await _rows(engine, "PRAGMA foreign_keys") == [(1,)]


# (Creating the key to users reflects users, whose expression index SQLAlchemy skips.)
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
async def test_alembic_run_on_its_own_engine_keeps_the_reactions(
    blank_engine: AsyncEngine,
    blank_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alembic run by hand (no connection handed in: env.py opens its own engine from the
    settings) treats SQLite as the app's migrations do: downgrading 0011 rebuilds the
    messages table, and with foreign keys enforced that deleted every reaction."""
    engine = blank_engine
    await upgrade_to_head(engine)
    (message_id,) = await _seed(engine, users=("alice",), authors=("alice",), liked=1)
    await engine.dispose()

    monkeypatch.setenv("VIDEOCHAT_DATABASE_URL", blank_database_url)
    monkeypatch.setenv("VIDEOCHAT_ENVIRONMENT", "test")
    monkeypatch.setenv("VIDEOCHAT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        from alembic import command

        # (env.py runs the migrations with asyncio.run: off this test's event loop.)
        await asyncio.to_thread(command.downgrade, alembic_config(), "0010")
    finally:
        get_settings.cache_clear()

    assert await _rows(engine, "SELECT content FROM messages") == [("hello 1",)]
    reactions = await _rows(engine, "SELECT message_id, emoji FROM message_reactions")
    assert reactions == [(message_id, "👍")]
    if engine.dialect.name == "sqlite":
        assert await _rows(engine, "PRAGMA foreign_key_check") == []
