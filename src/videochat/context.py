"""The per-process objects the app is built from, and FastAPI dependencies on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from videochat.config import Settings
from videochat.db.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from videochat.kit.cache import CacheStore
    from videochat.realtime.hub import Hub


@dataclass(slots=True)
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    hub: Hub
    # Hot reads (kit.cache); sessions from ``sessionmaker`` carry it too.
    cache: CacheStore | None = None


def get_context(request: Request) -> AppContext:
    """The app's context (works for HTTP requests and WebSockets alike)."""
    context: AppContext = request.app.state.context
    return context


def get_settings_dependency(context: Annotated[AppContext, Depends(get_context)]) -> Settings:
    return context.settings


async def get_session(
    context: Annotated[AppContext, Depends(get_context)],
) -> AsyncIterator[AsyncSession]:
    """One session per request, committed once when the endpoint returns (db.unit_of_work).

    The dependency's scope is the endpoint function, so the commit (and its after-commit
    hooks) happens before the response is sent: a client never sees a 200 for a write
    that then failed to commit.
    """
    async with unit_of_work(context.sessionmaker) as session:
        yield session


Context = Annotated[AppContext, Depends(get_context)]
SettingsDep = Annotated[Settings, Depends(get_settings_dependency)]
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
