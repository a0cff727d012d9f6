"""The chat flows apply the same rules to every producer, not only to sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from videochat.accounts import service as accounts
from videochat.chat import flows
from videochat.chat import repository as chat_repository
from videochat.chat.frames import message_frame
from videochat.chat.writer import MessageWriter
from videochat.config import Settings
from videochat.db.engine import create_sessionmaker
from videochat.db.unit_of_work import unit_of_work
from videochat.realtime.broker import MemoryBroker
from videochat.realtime.hub import Hub
from videochat.rooms import service as rooms
from videochat.rooms.policy import Muted


@dataclass
class Bot:
    """A producer that is no socket: a bot, or an HTTP route."""

    room_id: str
    user_id: str
    username: str
    muted: bool = False


class RecordingHub(Hub):
    def __init__(self) -> None:
        super().__init__(MemoryBroker())
        self.published: list[dict[str, Any]] = []

    async def publish(self, room_id: str, frame: dict[str, Any], **_: Any) -> None:
        self.published.append(frame)


@pytest.fixture
def hub() -> RecordingHub:
    return RecordingHub()


@pytest.fixture
async def writer(engine: AsyncEngine, hub: RecordingHub) -> AsyncIterator[MessageWriter]:
    writer = MessageWriter(engine, hub.publish_many, message_frame, cluster=False)
    yield writer
    await writer.stop()  # its held connection goes back (else the GC finds it later)


async def test_a_muted_producer_is_refused_as_the_socket_refuses_it(
    engine: AsyncEngine, settings: Settings, hub: RecordingHub, writer: MessageWriter
) -> None:
    sessionmaker = create_sessionmaker(engine)
    async with unit_of_work(sessionmaker) as session:
        author = await accounts.create_guest(session, username="bot", jwt=settings.jwt)
        room = await rooms.create(session, name="Room", is_private=False, owner=None)
    bot = Bot(room.id, author.id, "bot")
    stored = await flows.post_message(writer, sender=bot, content="hello", max_chars=100)

    bot.muted = True
    with pytest.raises(Muted) as refused:
        await flows.post_message(writer, sender=bot, content="still me", max_chars=100)
    # What the socket sends back as its error frame: the same code and text.
    assert (refused.value.frame_code, refused.value.detail) == (
        "muted",
        "a moderator has muted you here",
    )
    with pytest.raises(Muted):
        async with unit_of_work(sessionmaker) as session:
            await flows.edit_message(
                session, hub, sender=bot, message_id=stored.id, content="edited", max_chars=100
            )
    with pytest.raises(Muted):
        async with unit_of_work(sessionmaker) as session:
            await flows.react(session, hub, sender=bot, message_id=stored.id, emoji="👍", add=True)

    async with sessionmaker() as session:
        history = await chat_repository.after(session, room.id, since=0, limit=10)
        reacted = await chat_repository.reactions_of(session, [stored.id])
    assert [m.content for m in history] == ["hello"]
    assert reacted[stored.id] == []
    assert hub.published == []


async def test_an_edit_is_announced_only_once_committed(
    engine: AsyncEngine, settings: Settings, hub: RecordingHub, writer: MessageWriter
) -> None:
    sessionmaker = create_sessionmaker(engine)
    async with unit_of_work(sessionmaker) as session:
        author = await accounts.create_guest(session, username="bot", jwt=settings.jwt)
        room = await rooms.create(session, name="Room", is_private=False, owner=None)
    bot = Bot(room.id, author.id, "bot")
    stored = await flows.post_message(writer, sender=bot, content="hello", max_chars=100)

    with pytest.raises(RuntimeError):
        async with unit_of_work(sessionmaker) as session:
            await flows.edit_message(
                session, hub, sender=bot, message_id=stored.id, content="oops", max_chars=100
            )
            raise RuntimeError("the unit of work fails after the edit")
    assert hub.published == []

    async with unit_of_work(sessionmaker) as session:
        await flows.edit_message(
            session, hub, sender=bot, message_id=stored.id, content="edited", max_chars=100
        )
        assert hub.published == []  # not before the commit
    assert [(f["type"], f["content"]) for f in hub.published] == [("message_edited", "edited")]
