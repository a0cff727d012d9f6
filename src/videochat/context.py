"""The per-process objects the app is built from, and FastAPI dependencies on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from videochat.config import Settings

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
    """One session per request; whatever a service did not commit is rolled back."""
    async with context.sessionmaker() as session:
        yield session


Context = Annotated[AppContext, Depends(get_context)]
SettingsDep = Annotated[Settings, Depends(get_settings_dependency)]
Session = Annotated[AsyncSession, Depends(get_session)]
