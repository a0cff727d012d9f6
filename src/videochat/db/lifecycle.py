"""The database part of the context: an engine disposed whatever happens.

``videochat.runtime`` opens it first and closes it last; the CLI's ``migrate``,
``create-admin`` and ``check`` open only this part.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from videochat.config import Settings
from videochat.db.engine import create_engine
from videochat.db.migrate import upgrade_to_head


def enter_engine(stack: AsyncExitStack, settings: Settings) -> AsyncEngine:
    """An engine whose disposal is on ``stack``."""
    engine = create_engine(settings)
    stack.push_async_callback(engine.dispose)
    return engine


@asynccontextmanager
async def open_database(settings: Settings, *, migrate: bool) -> AsyncIterator[AsyncEngine]:
    """The CLI's subset of the context: an engine (migrated to head when asked)."""
    async with AsyncExitStack() as stack:
        engine = enter_engine(stack, settings)
        if migrate:
            await upgrade_to_head(engine)
        yield engine
