"""The unit of work: one commit, hooks after it, nothing announced on rollback."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from videochat.db.engine import create_sessionmaker
from videochat.db.models import User
from videochat.db.unit_of_work import after_commit, unit_of_work


async def _users(engine: AsyncEngine) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_hooks_run_after_the_commit_in_order(engine: AsyncEngine) -> None:
    seen: list[tuple[str, int]] = []

    async with unit_of_work(create_sessionmaker(engine)) as session:
        session.add(User(username="ada"))

        async def first() -> None:
            seen.append(("first", await _users(engine)))

        async def second() -> None:
            seen.append(("second", await _users(engine)))

        after_commit(session, first)
        after_commit(session, second)
        assert seen == []  # nothing runs before the commit

    # Each hook saw the row committed (read from another connection).
    assert seen == [("first", 1), ("second", 1)]


async def test_rollback_drops_the_hooks(engine: AsyncEngine) -> None:
    ran: list[str] = []

    async def hook() -> None:
        ran.append("hook")

    with pytest.raises(RuntimeError):
        async with unit_of_work(create_sessionmaker(engine)) as session:
            session.add(User(username="bob"))
            after_commit(session, hook)
            raise RuntimeError("the request failed")

    assert ran == []
    assert await _users(engine) == 0


async def test_a_failing_hook_does_not_stop_the_others(engine: AsyncEngine) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise ConnectionError("cache is down")

    async def announce() -> None:
        ran.append("announce")

    async with unit_of_work(create_sessionmaker(engine)) as session:
        session.add(User(username="cy"))
        after_commit(session, broken)
        after_commit(session, announce)

    assert ran == ["announce"]
    assert await _users(engine) == 1


async def _cancelled_at(engine: AsyncEngine, moment: str) -> list[int]:
    """Run a unit of work whose task is cancelled at ``moment``; what its hooks saw.

    A socket's frame handler is cancelled this way when a moderator's kick closes the
    socket in the middle of an edit: the edit must not be stored unannounced.
    """
    announced: list[int] = []
    started = asyncio.Event()

    async def work() -> None:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            session.add(User(username="di"))

            async def slow() -> None:
                started.set()
                await asyncio.sleep(0.05)

            async def announce() -> None:
                announced.append(await _users(engine))

            if moment == "in a hook":
                after_commit(session, slow)
            else:  # right after the database committed, before any hook ran
                event.listen(session.sync_session, "after_commit", lambda _: task.cancel())
            after_commit(session, announce)

    task = asyncio.create_task(work())
    if moment == "in a hook":
        await started.wait()
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # the cancel still ends the task, once its commit is announced
    return announced


@pytest.mark.parametrize("moment", ["after the commit", "in a hook"])
async def test_a_cancel_after_the_commit_still_runs_its_hooks(
    engine: AsyncEngine, moment: str
) -> None:
    assert await _cancelled_at(engine, moment) == [1]
    assert await _users(engine) == 1
