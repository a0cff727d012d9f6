"""Repositories and services straight against SQLite and PostgreSQL (one suite)."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from videochat.accounts import service as accounts
from videochat.chat import repository as chat_repository
from videochat.chat import service as chat
from videochat.config import Settings
from videochat.db.engine import create_sessionmaker
from videochat.db.migrate import upgrade_to_head
from videochat.db.models import RoomRole
from videochat.db.unit_of_work import unit_of_work
from videochat.exceptions import Conflict, Forbidden, NotFound, Unauthorized
from videochat.rooms import service as rooms


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


async def test_migrations_create_every_table_and_index(blank_database_url: str) -> None:
    engine = create_async_engine(blank_database_url)
    await upgrade_to_head(engine)
    async with engine.connect() as connection:
        tables, indexes = await connection.run_sync(
            lambda sync: (
                set(inspect(sync).get_table_names()),
                {ix["name"] for ix in inspect(sync).get_indexes("messages")},
            )
        )
    assert tables >= {"users", "rooms", "room_members", "messages", "refresh_tokens"}
    assert "ix_messages_room_id_id" in indexes
    await upgrade_to_head(engine)  # a second run is a no-op
    await engine.dispose()


async def test_room_owner_and_membership(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessions() as session:
        owner = await accounts.create_guest(session, username="owner", jwt=settings.jwt)
        guest = await accounts.create_guest(session, username="guest", jwt=settings.jwt)
        user = await accounts.get(session, owner.id)
        room = await rooms.create(session, name="Room", is_private=True, owner=user)
        await session.commit()  # services leave the commit to their caller
    async with sessions() as session:
        with pytest.raises(Forbidden):
            await rooms.join(session, room_id=room.id, user_id=guest.id, invite_code=None)
        joined, _ = await rooms.join(
            session, room_id=room.id, user_id=guest.id, invite_code=room.invite_code
        )
        roles = {m.user_id: m.role for m in joined.members}
        assert roles == {owner.id: RoomRole.OWNER, guest.id: RoomRole.MEMBER}
        with pytest.raises(NotFound):
            await rooms.join(session, room_id="nope", user_id=guest.id, invite_code=None)
        with pytest.raises(NotFound):
            await rooms.get_visible(session, room.id, viewer_id=None)


async def test_message_ids_are_a_total_order(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessions() as session:
        author = await accounts.create_guest(session, username="writer", jwt=settings.jwt)
        room = await rooms.create(session, name="Room", is_private=False, owner=None)
        await session.commit()  # services leave the commit to their caller

    async def write(index: int) -> int:
        async with unit_of_work(sessions) as session:
            message = await chat.post(
                session, room_id=room.id, user_id=author.id, username="writer", content=str(index)
            )
            return message.id

    ids = await asyncio.gather(*(write(i) for i in range(40)))
    assert len(set(ids)) == 40
    async with sessions() as session:
        everything = await chat_repository.after(session, room.id, since=0, limit=100)
        assert [m.id for m in everything] == sorted(ids)
        assert everything[0].created_at.tzinfo is UTC
        middle = sorted(ids)[20]
        older = await chat.history(session, room_id=room.id, limit=100, before=middle)
        newer = await chat.missed(session, room_id=room.id, since=middle - 1)
        assert [m.id for m in older] + [m.id for m in newer] == sorted(ids)


async def test_refresh_rotation_in_the_database(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    # Without the grace for a lost answer: any second use is a reuse.
    jwt = settings.jwt.model_copy(update={"refresh_reuse_grace_seconds": 0})
    async with unit_of_work(sessions) as session:
        pair = await accounts.register(session, username="Rita", password="long-enough-pw", jwt=jwt)
        with pytest.raises(Conflict):
            await accounts.register(session, username="rita", password="x" * 10, jwt=jwt)
    async with unit_of_work(sessions) as session:
        rotated = await accounts.refresh(session, refresh_token=pair.refresh_token, jwt=jwt)
    async with unit_of_work(sessions) as session:
        with pytest.raises(Unauthorized):
            await accounts.refresh(session, refresh_token=pair.refresh_token, jwt=jwt)
    async with unit_of_work(sessions) as session:
        with pytest.raises(Unauthorized, match="revoked"):
            await accounts.refresh(session, refresh_token=rotated.refresh_token, jwt=jwt)


@pytest.mark.parametrize("grace", [0, 30])
async def test_concurrent_refresh_spends_the_token_once(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, grace: int
) -> None:
    """Five uses at once (two tabs without the Web Locks API, say): the token is spent
    once. Without the grace the other four are reuses (and revoke the family); within
    it each gets a pair of the same family, and nothing is revoked."""
    jwt = settings.jwt.model_copy(update={"refresh_reuse_grace_seconds": grace})
    async with unit_of_work(sessions) as session:
        pair = await accounts.register(session, username="sam", password="long-enough-pw", jwt=jwt)

    async def attempt() -> str | None:
        async with unit_of_work(sessions) as session:
            try:
                rotated = await accounts.refresh(session, refresh_token=pair.refresh_token, jwt=jwt)
            except Unauthorized:
                return None
            return rotated.refresh_token

    outcomes = await asyncio.gather(*(attempt() for _ in range(5)))
    fresh = [token for token in outcomes if token is not None]
    if not grace:
        assert len(fresh) == 1
        return
    assert len(set(fresh)) == 5
    for token in fresh:  # each successor rotates: the family stands
        async with unit_of_work(sessions) as session:
            await accounts.refresh(session, refresh_token=token, jwt=jwt)
