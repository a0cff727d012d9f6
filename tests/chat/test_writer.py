"""Group commit: many messages per transaction, each room broadcast in id order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import eventually
from videochat.accounts import service as accounts
from videochat.chat import repository as chat_repository
from videochat.chat.frames import message_frame
from videochat.chat.writer import BATCH_ENOUGH, MessageWriter
from videochat.config import Settings
from videochat.db.engine import create_engine, create_sessionmaker
from videochat.exceptions import ServiceUnavailable
from videochat.rooms import service as rooms


class Published:
    """What the writer handed to the broker, batch by batch, in order."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, dict[str, Any]]]] = []

    async def __call__(self, frames: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self.batches.append(list(frames))
        await asyncio.sleep(0)  # a real broker yields here too

    def ids_by_room(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for batch in self.batches:
            for room_id, frame in batch:
                found.setdefault(room_id, []).append(frame["id"])
        return found


async def _rooms_and_author(
    engine: AsyncEngine, settings: Settings, count: int
) -> tuple[list[str], str]:
    async with create_sessionmaker(engine)() as session:
        author = await accounts.create_guest(session, username="writer", jwt=settings.jwt)
        created = [
            await rooms.create(session, name=f"Room {n}", is_private=False, owner=None)
            for n in range(count)
        ]
        await session.commit()  # services leave the commit to their caller
        return [room.id for room in created], author.id


async def test_concurrent_messages_share_commits_and_keep_each_rooms_order(
    engine: AsyncEngine, settings: Settings
) -> None:
    room_ids, author = await _rooms_and_author(engine, settings, 3)
    published = Published()
    writer = MessageWriter(engine, published, message_frame, cluster=False)

    try:
        stored = await asyncio.gather(
            *(
                writer.post(
                    room_id=room_ids[n % 3], user_id=author, username="writer", content=str(n)
                )
                for n in range(60)
            )
        )
    finally:
        await writer.stop()

    assert sorted(message.content for message in stored) == sorted(str(n) for n in range(60))
    assert len(published.batches) < 60, "every message paid its own commit"
    by_room = published.ids_by_room()
    async with create_sessionmaker(engine)() as session:
        for room_id in room_ids:
            history = await chat_repository.after(session, room_id, since=0, limit=100)
            assert [m.id for m in history] == by_room[room_id] == sorted(by_room[room_id])
            assert len(history) == 20


async def test_a_message_that_cannot_be_stored_does_not_sink_its_batch(
    engine: AsyncEngine, settings: Settings
) -> None:
    room_ids, author = await _rooms_and_author(engine, settings, 1)
    published = Published()
    writer = MessageWriter(engine, published, message_frame, cluster=False)

    posts = [
        writer.post(room_id=room_ids[0], user_id=author, username="writer", content=str(n))
        for n in range(5)
    ]
    # A room that does not exist (deleted while its sockets were still sending).
    posts.insert(2, writer.post(room_id="gone", user_id=author, username="w", content="x"))
    try:
        results = await asyncio.gather(*posts, return_exceptions=True)
    finally:
        await writer.stop()

    assert isinstance(results[2], ServiceUnavailable)
    good = [r for r in results if not isinstance(r, BaseException)]
    assert sorted(m.content for m in good) == [str(n) for n in range(5)]
    assert published.ids_by_room() == {room_ids[0]: sorted(m.id for m in good)}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_instances_writing_the_same_rooms_publish_in_id_order(
    engine: AsyncEngine, settings: Settings
) -> None:
    """With several instances, per-room advisory locks keep commit order = publish order."""
    room_ids, author = await _rooms_and_author(engine, settings, 2)
    other_engine = create_engine(settings)
    # One broker both instances publish to: its order is what every subscriber sees.
    published = Published()
    writers = [
        MessageWriter(instance, published, message_frame, cluster=True)
        for instance in (engine, other_engine)
    ]

    async def sender(writer: MessageWriter, room_id: str, name: str) -> None:
        # Each sender waits for its acknowledgement, as a socket does: the two
        # instances then commit many small batches that interleave.
        for n in range(25):
            await writer.post(room_id=room_id, user_id=author, username=name, content=str(n))

    try:
        await asyncio.gather(
            *(sender(writers[n % 2], room_ids[(n // 2) % 2], f"sender{n}") for n in range(16))
        )
    finally:
        for writer in writers:
            await writer.stop()
        await other_engine.dispose()

    for room_id, ids in published.ids_by_room().items():
        assert ids == sorted(ids), f"room {room_id} was broadcast out of id order"
        assert len(ids) == 200


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_batch_draws_its_ids_only_once_its_rooms_are_locked(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Another instance holds the room (its batch stored, not yet published): this
    instance's batch waits for the lock before its INSERT draws any id, so its message
    comes after the other one's, whatever the order the two were sent in."""
    (room_id,), author = await _rooms_and_author(engine, settings, 1)
    writer = MessageWriter(engine, Published(), message_frame, cluster=True)
    async with engine.connect() as other:
        await other.execution_options(isolation_level="AUTOCOMMIT")
        await other.execute(
            text("SELECT pg_advisory_lock(hashtextextended('videochat:room:' || :room, 0))"),
            {"room": room_id},
        )
        try:
            waiting = asyncio.create_task(
                writer.post(room_id=room_id, user_id=author, username="this", content="first")
            )

            async def blocked_on_the_lock() -> bool:
                found = await other.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND wait_event = 'advisory' AND datname = current_database()"
                    )
                )
                return bool(found.scalar())

            await eventually(blocked_on_the_lock, message="the batch never waited for the lock")
            # The other instance's message, stored while it holds the room.
            inserted = await other.execute(
                text(
                    "INSERT INTO messages (room_id, user_id, username, content, created_at) "
                    "VALUES (:room, :user, 'other', 'second', now()) RETURNING id"
                ),
                {"room": room_id, "user": author},
            )
            other_id = inserted.scalar_one()
            assert not waiting.done()
        finally:
            await other.execute(text("SELECT pg_advisory_unlock_all()"))
    try:
        mine = await asyncio.wait_for(waiting, 10)
    finally:
        await writer.stop()
    assert mine.id > other_id


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_batch_that_follows_at_once_releases_the_last_ones_rooms_itself(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Several instances: a batch ready once the last one is published unlocks its rooms
    in its own statement (one round trip a batch, not two), and an idle writer holds no
    room."""
    room_ids, author = await _rooms_and_author(engine, settings, 2)
    statements: list[str] = []

    def log_queries(dbapi_connection: Any, record: Any) -> None:
        record.driver_connection.add_query_logger(lambda query: statements.append(query.query))

    await engine.dispose()  # (every connection from here on is a new one, logged)
    event.listen(engine.sync_engine.pool, "connect", log_queries)
    follow_ups: list[asyncio.Future[Any]] = []

    class PublishedAndSentMore(Published):
        async def __call__(self, frames: Sequence[tuple[str, dict[str, Any]]]) -> None:
            # The next message is there as this batch goes out: the next batch goes at once.
            if len(follow_ups) < 5:
                room_id = room_ids[len(follow_ups) % 2]
                follow_ups.append(
                    writer.enqueue(room_id=room_id, user_id=author, username="w", content="x")
                )
            await super().__call__(frames)

    published = PublishedAndSentMore()
    # No batching window: each batch is the one message waiting.
    writer = MessageWriter(engine, published, message_frame, cluster=True, window=0)
    try:
        await writer.post(room_id=room_ids[0], user_id=author, username="w", content="first")
        await asyncio.wait_for(asyncio.gather(*follow_ups), 10)

        async def no_room_held() -> bool:
            async with engine.connect() as connection:
                held = await connection.execute(
                    text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
                        "ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                        "AND a.datname = current_database()"
                    )
                )
                return held.scalar() == 0

        await eventually(no_room_held, message="the idle writer still holds rooms")
    finally:
        await writer.stop()
        event.remove(engine.sync_engine.pool, "connect", log_queries)

    assert len(published.batches) == 6
    inserts = [s for s in statements if "INSERT INTO messages" in s]
    unlocks_alone = [s for s in statements if s.strip() == "SELECT pg_advisory_unlock_all()"]
    assert len(inserts) == 6
    assert len(unlocks_alone) == 1, f"{len(unlocks_alone)} unlock round trips for 6 batches"
    assert all("pg_advisory_unlock_all" in s for s in inserts[1:])


async def test_batches_keep_one_connection_and_read_back_as_stored(
    engine: AsyncEngine, settings: Settings
) -> None:
    """No pool checkout (with its pre-ping and reset) per batch: SQLite writes from a
    thread of its own, PostgreSQL holds one connection while messages keep coming."""
    room_ids, author = await _rooms_and_author(engine, settings, 1)
    checkouts = 0

    def counted(*_: Any) -> None:
        nonlocal checkouts
        checkouts += 1

    event.listen(engine.sync_engine.pool, "checkout", counted)
    writer = MessageWriter(engine, Published(), message_frame, cluster=False)
    try:
        stored = [
            await writer.post(room_id=room_ids[0], user_id=author, username="w", content=str(n))
            for n in range(10)
        ]
    finally:
        await writer.stop()
        event.remove(engine.sync_engine.pool, "checkout", counted)

    assert checkouts <= 1, f"{checkouts} pool checkouts for 10 batches"
    async with create_sessionmaker(engine)() as session:
        history = await chat_repository.after(session, room_ids[0], since=0, limit=100)
    assert [(m.id, m.content, m.created_at, m.user_id) for m in history] == [
        (m.id, m.content, m.created_at, m.user_id) for m in stored
    ]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_held_connection_left_mid_statement_is_dropped_not_reported_as_a_crash(
    engine: AsyncEngine, settings: Settings
) -> None:
    """The writer's held connection still busy with a statement (as one cut off by a
    restarting PostgreSQL was left: `test_postgres_restart_under_load` once saw asyncpg's
    "another operation is in progress"): the next batch is told `unavailable` like any
    outage, the connection is dropped, and the batch after that is stored."""
    (room_id,), author = await _rooms_and_author(engine, settings, 1)
    writer = MessageWriter(engine, Published(), message_frame, cluster=False)
    try:
        await writer.post(room_id=room_id, user_id=author, username="w", content="first")
        held = writer._held
        assert held is not None
        driver = (await held.get_raw_connection()).driver_connection
        assert driver is not None
        busy = asyncio.create_task(driver.fetch("SELECT pg_sleep(2)"))
        await asyncio.sleep(0.2)  # the sleep's statement is on the wire
        with pytest.raises(ServiceUnavailable):
            await writer.post(room_id=room_id, user_id=author, username="w", content="lost")
        assert writer._held is None
        busy.cancel()
        with contextlib.suppress(BaseException):
            await busy
        stored = await writer.post(room_id=room_id, user_id=author, username="w", content="next")
    finally:
        await writer.stop()
    async with create_sessionmaker(engine)() as session:
        history = await chat_repository.after(session, room_id, since=0, limit=100)
    assert [m.content for m in history] == ["first", "next"]
    assert history[-1].id == stored.id


async def test_under_load_a_batch_waits_its_window_for_more_messages(
    engine: AsyncEngine, settings: Settings
) -> None:
    room_ids, author = await _rooms_and_author(engine, settings, 1)
    published = Published()
    writer = MessageWriter(engine, published, message_frame, cluster=False, window=0.3)

    def post(n: int) -> Any:
        return writer.post(room_id=room_ids[0], user_id=author, username="w", content=str(n))

    try:
        await post(0)  # quiet: stored at once, alone
        # A message every 10 ms (a gap far below half the window): once the writer has
        # seen a few, each batch waits its window and ~30 messages share it.
        sent = []
        for n in range(1, 41):
            sent.append(asyncio.ensure_future(post(n)))
            await asyncio.sleep(0.01)
        stored = await asyncio.gather(*sent)
    finally:
        await writer.stop()

    sizes = [len(batch) for batch in published.batches]
    assert sizes[0] == 1
    assert sum(sizes) == 41
    assert len(sizes) <= 8, sizes  # one commit per message would be 41
    assert [m.content for m in stored] == [str(n) for n in range(1, 41)]


async def _batch_sizes_at_a_steady_pace(
    engine: AsyncEngine,
    settings: Settings,
    *,
    cluster: bool,
    count: int,
    gap: float,
    window: float | None = None,
) -> list[int]:
    """The writer's batches for ``count`` messages sent ``gap`` apart (each stored, in
    order); ``window`` None: the writer's default."""
    room_ids, author = await _rooms_and_author(engine, settings, 1)
    published = Published()
    writer = MessageWriter(engine, published, message_frame, cluster=cluster, window=window)
    sent = []
    try:
        for n in range(count):
            sent.append(
                asyncio.ensure_future(
                    writer.post(room_id=room_ids[0], user_id=author, username="w", content=str(n))
                )
            )
            await asyncio.sleep(gap)
        stored = await asyncio.gather(*sent)
    finally:
        await writer.stop()
    assert [m.content for m in stored] == [str(n) for n in range(count)]
    return [len(batch) for batch in published.batches]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_with_several_instances_a_batch_waits_longer_for_company(
    engine: AsyncEngine, settings: Settings
) -> None:
    """A message every 7 ms: one instance (12 ms window) stores them as they come, while
    an instance of several (24 ms) lets a few share each commit: each instance sees only
    its own sockets' share of the messages, and a batch costs it more (the rooms' locks)."""
    sizes = await _batch_sizes_at_a_steady_pace(engine, settings, cluster=True, count=80, gap=0.007)
    assert sum(sizes) == 80
    # (The first dozen go alone: the writer was quiet before, and its estimate of the
    # pace takes a few messages to come down.) The 12 ms window: all of them alone.
    shared = sum(size for size in sizes if size > 1)
    assert shared >= 40, str(sizes)
    assert max(sizes) <= BATCH_ENOUGH + 2, str(sizes)


async def test_a_waiting_batch_is_stored_once_it_has_company_enough(
    engine: AsyncEngine, settings: Settings
) -> None:
    """A message every 10 ms against a 2 s window: a waiting batch closes at BATCH_ENOUGH
    messages, not at the end of the window (which held every message the whole window)."""
    sizes = await _batch_sizes_at_a_steady_pace(
        engine, settings, cluster=False, count=60, gap=0.01, window=2.0
    )
    assert sum(sizes) == 60
    # (A batch takes what came by the time the flusher runs: one or two more at most.)
    assert max(sizes) <= BATCH_ENOUGH + 2, sizes
    assert sum(1 for size in sizes if size >= BATCH_ENOUGH) >= 2, sizes


async def test_messages_at_a_moderate_rate_are_stored_at_once(
    engine: AsyncEngine, settings: Settings
) -> None:
    """One message every 0.3 s against a 0.5 s window: none waits for company it would
    not get (the old rule held each one that came within a window of the last batch)."""
    room_ids, author = await _rooms_and_author(engine, settings, 1)
    published = Published()
    writer = MessageWriter(engine, published, message_frame, cluster=False, window=0.5)
    loop = asyncio.get_running_loop()
    took = []
    try:
        for n in range(5):
            began = loop.time()
            await writer.post(room_id=room_ids[0], user_id=author, username="w", content=str(n))
            took.append(loop.time() - began)
            await asyncio.sleep(0.3)
    finally:
        await writer.stop()

    assert [len(batch) for batch in published.batches] == [1] * 5
    # A stored message takes milliseconds; one held for the window would take 0.5 s.
    assert max(took) < 0.25, took
