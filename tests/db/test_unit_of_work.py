"""The unit of work: one commit, hooks after it, nothing announced on rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
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
