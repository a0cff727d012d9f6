"""Alembic, driven from code: ``videochat migrate`` and start-up both use this.

Alembic (with Mako) is imported when a migration runs, not with the app: servers that
start with ``auto_migrate`` off never need it, and it was ~0.15 s of every start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _upgrade(connection: Connection) -> None:
    from alembic import command

    config = alembic_config()
    # env.py reuses this connection, which also keeps ``:memory:`` databases intact.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _pending(connection: Connection) -> bool:
    """Whether the database is behind the newest migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return MigrationContext.configure(connection).get_current_revision() != head


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Apply every pending migration on the engine's database."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            if not await connection.run_sync(_pending):
                return  # (the key check below scans every key: only when one runs)
    await run_migrations(engine, _upgrade)


async def run_migrations(engine: AsyncEngine, work: Callable[[Connection], None]) -> None:
    """``work`` (Alembic's commands on the connection) in one transaction; on SQLite with
    foreign keys off, checked before the commit.

    SQLite changes a table by building a new one and dropping the old, and with foreign
    keys enforced (as the app's connections are) the drop first deletes every row, with
    the rows' ON DELETE actions: rebuilding messages deleted every reaction. So the keys
    are off while migrations run (possible only outside a transaction), checked before
    the commit, and on again for the connection's next user. Start-up's upgrade and
    Alembic run by hand (env.py's own engine) both come here.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(work)
        return
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            if (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() != 0:
                raise RuntimeError("foreign keys could not be turned off for the migrations")
            await connection.commit()  # (SQLAlchemy's autobegun one: SQLite began none)
            async with connection.begin():
                await connection.run_sync(work)
                broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"foreign keys broken after the migrations: {broken[:5]}")
        finally:
            await connection.rollback()  # (whatever a failure left open)
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            await connection.commit()
