"""The SQLite file as the app opens it: its pragmas, on a new file and on an old one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from videochat.config import Settings
from videochat.db.engine import SQLITE_PAGE_SIZE, create_engine
from videochat.db.migrate import upgrade_to_head


def _settings(path: Path) -> Settings:
    return Settings(
        environment="test", data_dir=path.parent, database_url=f"sqlite+aiosqlite:///{path}"
    )


def _page_size(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("PRAGMA page_size").fetchone()[0])


async def test_a_new_database_gets_small_pages_in_wal_mode(tmp_path: Path) -> None:
    """A chat batch writes one index page per room it touches: smaller pages are fewer
    bytes in the WAL for every commit and checkpoint (docs/BENCHMARKS.md)."""
    path = tmp_path / "new.db"
    engine = create_engine(_settings(path))
    try:
        await upgrade_to_head(engine)
        async with engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
    finally:
        await engine.dispose()
    assert mode == "wal"
    assert _page_size(path) == SQLITE_PAGE_SIZE == 1024


async def test_an_existing_database_keeps_its_page_size_and_its_data(tmp_path: Path) -> None:
    # A file made before the change (SQLite's default pages, WAL already on): the pragma
    # cannot change it any more and must not disturb it.
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO notes (body) VALUES ('kept')")
    before = _page_size(path)
    assert before != SQLITE_PAGE_SIZE
    engine = create_engine(_settings(path))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO notes (body) VALUES ('added')"))
        async with engine.connect() as connection:
            bodies = (await connection.execute(text("SELECT body FROM notes"))).scalars().all()
    finally:
        await engine.dispose()
    assert bodies == ["kept", "added"]
    assert _page_size(path) == before
