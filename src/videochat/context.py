"""The per-process objects the app is built from, and FastAPI dependencies on them.

``videochat.runtime`` builds the context (and stops what it started); this module
only names its parts, so it imports no domain at run time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from videochat.config import Settings
from videochat.db.unit_of_work import unit_of_work
from videochat.kit.urls import origin

if TYPE_CHECKING:
    from videochat.chat.writer import MessageWriter
    from videochat.kit.cache import CacheStore
    from videochat.live.ingest import LiveManager
    from videochat.media.tasks import JobQueue
    from videochat.observability.health import HealthSources
    from videochat.realtime.hub import Hub
    from videochat.security.ratelimit import Limiter
    from videochat.sfu.manager import SfuManager


@dataclass(slots=True)
class AppContext:
    """Everything a request, a frame or a job may use; opened by ``runtime.open_context``."""

    settings: Settings
    engine: AsyncEngine
    # Its sessions carry ``cache`` (kit.cache reads it from ``session.info``).
    sessionmaker: async_sessionmaker[AsyncSession]
    cache: CacheStore
    hub: Hub
    limiter: Limiter
    chat_writer: MessageWriter
    video_jobs: JobQueue
    live: LiveManager
    # What /health and /health/ready ask the domains (registered by the builder).
    health: HealthSources
    # What a moderation action ("ban", "kick", "mute") does in other domains (their
    # uploads, their streams): hooks registered by the builder, so rooms imports none.
    moderation_hooks: Mapping[str, Sequence[ModerationHook]] = field(default_factory=dict)
    # Janus instances for calls on an SFU; None when VIDEOCHAT_SFU__JANUS_URL is unset.
    sfu: SfuManager | None = None


# Runs in the moderation request's unit of work: (session, context, room_id, user_id).
ModerationHook = Callable[[AsyncSession, AppContext, str, str], Awaitable[None]]


def attach_context(app: Starlette, context: AppContext | None) -> None:
    """Make ``context`` the app's while its lifespan runs (None detaches it)."""
    app.state.context = context


def app_context(app: Starlette) -> AppContext:
    """The running app's context: the one place where it is read back."""
    context: AppContext | None = getattr(app.state, "context", None)
    if context is None:
        raise RuntimeError("the app is not running (its lifespan has not opened a context)")
    return context


def get_context(connection: HTTPConnection) -> AppContext:
    """The app's context, for HTTP requests and WebSockets alike."""
    return app_context(connection.app)


def get_settings_dependency(context: Annotated[AppContext, Depends(get_context)]) -> Settings:
    return context.settings


def get_origin(
    connection: HTTPConnection, settings: Annotated[Settings, Depends(get_settings_dependency)]
) -> str:
    """What the URLs in this request's answer start with (``kit.urls.origin``)."""
    return origin(settings.public_url, connection)


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
# The scheme and host every URL in the answer starts with: URLs are always absolute.
Origin = Annotated[str, Depends(get_origin)]
