"""The unit of work: one commit per request, job or frame; what must follow it runs after.

Repositories and services never commit. Whoever opened the session (the request's
dependency, a job, a socket frame's handler) commits once, through ``commit`` here,
and then the after-commit hooks run in the order they were added: cache
invalidations and broadcasts, which must never announce what could still roll back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = structlog.get_logger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
_HOOKS = "videochat.after_commit"


def after_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run ``hook`` once the session's pending work is committed (dropped on rollback)."""
    session.info.setdefault(_HOOKS, []).append(hook)


async def commit(session: AsyncSession) -> None:
    """Commit, then run the after-commit hooks in order; a cancel waits for both.

    Once the commit is sent, what follows it must happen: a task cancelled meanwhile
    (a socket's frame handler when a moderator's kick closes the socket mid-edit) would
    otherwise leave the write stored and never announced, or its caches stale. The
    cancel is kept and raised once the commit and its hooks are done.
    """
    done = asyncio.ensure_future(_commit_then_hooks(session))
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        await asyncio.wait({done})  # a second cancel leaves it to finish by itself
        if not done.cancelled() and done.exception() is not None:
            log.warning("unit_of_work.commit_failed_while_cancelled", error=repr(done.exception()))
        raise


async def _commit_then_hooks(session: AsyncSession) -> None:
    """A hook that fails is logged and the others still run: the write is committed, and
    answering an error for it would invite the client to repeat it."""
    await session.commit()
    hooks: list[AfterCommit] = session.info.pop(_HOOKS, [])
    for hook in hooks:
        try:
            await hook()
        except Exception:
            log.exception("unit_of_work.after_commit_failed", hook=getattr(hook, "__name__", ""))


async def rollback(session: AsyncSession) -> None:
    """Roll back and forget the hooks of the work that was undone."""
    session.info.pop(_HOOKS, None)
    await session.rollback()


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session committed once when the block ends without error, rolled back otherwise."""
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await rollback(session)
            raise
        await commit(session)
