"""The SQLite writer: on the event loop while the write lock is free, else in its thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from videochat.db import engine, sqlite_thread
from videochat.db.sqlite_thread import SqliteThread, rollback_quietly


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "writer.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    return path


@pytest.fixture
async def writer(database: Path) -> AsyncIterator[SqliteThread]:
    thread = SqliteThread(str(database), name="test-writer")
    yield thread
    await thread.close()


def _insert(body: str, threads: list[int]):  # type: ignore[no-untyped-def]
    """A unit of work as the chat writer's: begins, inserts, commits; rolls back on error."""

    def work(connection: sqlite3.Connection) -> int:
        threads.append(threading.get_ident())
        try:
            connection.execute("BEGIN IMMEDIATE")
            cursor = connection.execute("INSERT INTO notes (body) VALUES (?)", (body,))
            connection.execute("COMMIT")
        except BaseException:
            rollback_quietly(connection)
            raise
        return int(cursor.lastrowid or 0)

    return work


def _bodies(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT body FROM notes ORDER BY id")]


async def test_work_runs_on_the_event_loop_when_the_write_lock_is_free(
    writer: SqliteThread, database: Path
) -> None:
    threads: list[int] = []
    first = await writer.run_inline_first(_insert("one", threads))
    second = await writer.run_inline_first(_insert("two", threads))
    assert (first, second) == (1, 2)
    assert threads == [threading.get_ident()] * 2
    assert _bodies(database) == ["one", "two"]


async def test_work_waits_in_the_thread_while_another_writer_holds_the_lock(
    writer: SqliteThread, database: Path
) -> None:
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer (a request's transaction) has the lock
    other.execute("INSERT INTO notes (body) VALUES ('theirs')")
    threads: list[int] = []
    stored = asyncio.create_task(writer.run_inline_first(_insert("ours", threads)))
    # The loop is not blocked meanwhile: the work tried inline once, then went to wait in
    # the writer thread, which waits for the lock.
    async with asyncio.timeout(10):
        while len(threads) < 2:
            await asyncio.sleep(0.01)
    assert threads[0] == threading.get_ident() != threads[1]
    assert not stored.done()
    other.execute("COMMIT")
    other.close()
    async with asyncio.timeout(10):
        assert await stored == 2
    assert _bodies(database) == ["theirs", "ours"]  # once, after theirs


async def test_commits_on_the_loop_are_checkpointed_by_the_thread(
    writer: SqliteThread, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loop's connection never checkpoints (a checkpoint syncs the file): without the
    # thread's checkpoints the WAL would grow by every commit (400 here: about 3 MB).
    monkeypatch.setattr(sqlite_thread, "CHECKPOINT_EVERY", 20)
    threads: list[int] = []
    for n in range(400):
        await writer.run_inline_first(_insert("x" * 2000 + str(n), threads))
        # A quiet moment after each checkpoint began: it copies the whole WAL.
        running = writer._checkpoint
        if running is not None and not running.done():
            await asyncio.wait([running])
    assert threads == [threading.get_ident()] * 400  # none waited: the WAL was small
    wal = database.with_name(database.name + "-wal")
    assert wal.stat().st_size < 1_000_000, wal.stat().st_size
    assert len(_bodies(database)) == 400


async def test_writes_wait_behind_a_checkpoint_once_the_wal_is_past_its_limit(
    writer: SqliteThread, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Beside a running checkpoint the WAL cannot start afresh; past the limit the writes
    # wait in the thread behind it instead.
    monkeypatch.setattr(sqlite_thread, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(sqlite_thread, "WAL_LIMIT_BYTES", 0)
    threads: list[int] = []
    for n in range(40):
        await writer.run_inline_first(_insert(str(n), threads))
    assert threads[:20] == [threading.get_ident()] * 20
    assert threads[20] != threading.get_ident()  # the checkpoint began after the 20th
    assert len(_bodies(database)) == 40


async def test_the_wal_file_is_cut_back_when_the_wal_starts_afresh(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer reads the WAL file's size as what the WAL holds: a file that kept its
    largest size made every checkpoint after it hold the writes back."""
    monkeypatch.setattr(engine, "JOURNAL_SIZE_LIMIT", 0)  # (read as the writer connects)
    monkeypatch.setattr(sqlite_thread, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(sqlite_thread, "WAL_LIMIT_BYTES", 200_000)
    writer = SqliteThread(str(database), name="test-writer")
    wal = database.with_name(database.name + "-wal")
    threads: list[int] = []
    try:
        for n in range(60):  # no quiet moment: the WAL grows past the limit
            await writer.run_inline_first(_insert("x" * 8000 + str(n), threads))
        assert wal.stat().st_size > 200_000
        for n in range(60):  # quiet moments: each checkpoint copies the whole WAL
            await writer.run_inline_first(_insert(str(n), threads))
            running = writer._checkpoint
            if running is not None and not running.done():
                await asyncio.wait([running])
        assert wal.stat().st_size < 200_000, wal.stat().st_size
        assert not writer._checkpoint_blocks
    finally:
        await writer.close()
    assert len(_bodies(database)) == 120
