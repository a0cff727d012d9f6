"""Alembic environment: runs on a connection handed in by videochat, or on the URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from videochat.config import get_settings
from videochat.db import models  # noqa: F401  (registers the tables)
from videochat.db.base import Base
from videochat.db.engine import create_engine
from videochat.db.migrate import run_migrations

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = create_engine(get_settings())
    try:
        # As start-up's migrations run: on SQLite with foreign keys off.
        await run_migrations(engine, _run)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_with_own_engine())


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `videochat migrate`")
run_migrations_online()
