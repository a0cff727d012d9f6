"""One suite for every broker and presence backend: in-memory and Redis."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.processes import ThrowawayRedis
from videochat.kit import resp
from videochat.kit.redis_client import connect
from videochat.realtime import redis_broker
from videochat.realtime.broker import Broker, MemoryBroker
from videochat.realtime.hub import Hub
from videochat.realtime.presence import MemoryPresence, Presence, RedisPresence
from videochat.realtime.redis_broker import RedisBroker


@pytest.fixture(params=["memory", "redis"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    if request.param == "redis":
        services.redis_available()
        instance: Broker = RedisBroker(services.REDIS_URL)
    else:
        instance = MemoryBroker()
    await instance.start()
    yield instance
    await instance.stop()


async def _wait_for(received: list[str], count: int) -> None:
    async with asyncio.timeout(5):
        while len(received) < count:
            await asyncio.sleep(0.01)


async def test_publish_reaches_subscribers_of_the_topic_only(broker: Broker) -> None:
    topic, other = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    first: list[str] = []
    second: list[str] = []
    elsewhere: list[str] = []
    await broker.subscribe(topic, first.append)
    await broker.subscribe(topic, second.append)
    await broker.subscribe(other, elsewhere.append)
    for index in range(50):
        await broker.publish(topic, f"m{index}")
    await _wait_for(first, 50)
    await _wait_for(second, 50)
    assert first == second == [f"m{i}" for i in range(50)]  # order kept
    assert elsewhere == []


async def test_unsubscribe_stops_delivery(broker: Broker) -> None:
    topic = f"t-{uuid.uuid4()}"
    kept: list[str] = []
    dropped: list[str] = []
    await broker.subscribe(topic, kept.append)
    await broker.subscribe(topic, dropped.append)
    await broker.unsubscribe(topic, dropped.append)
    await broker.publish(topic, "after")
    await _wait_for(kept, 1)
    # A negative check: nothing to poll for. Both handlers hear the topic in one dispatch,
    # so a delivery to the dropped one would have come with (or just after) the kept one.
    await asyncio.sleep(0.05)
    assert dropped == []


async def test_rooms_left_and_joined_at_once_keep_their_subscriptions(broker: Broker) -> None:
    # Every socket of a room leaves (the last one's unsubscribe) while the room's next
    # socket joins (a fresh subscribe), in many rooms at once: as a whole room of
    # clients reconnecting does. Each topic must still be heard afterwards. (The fan-out
    # benchmark's second round of sockets once found a room deaf on one instance: its
    # Redis subscription gone while its sockets were registered. This does not
    # reproduce that; it checks the broker's bookkeeping under the same interleaving.)
    topics = [f"t-{uuid.uuid4()}" for _ in range(100)]
    leaving = [(lambda _: None) for _ in topics]
    joined: dict[str, list[str]] = {topic: [] for topic in topics}
    for topic, handler in zip(topics, leaving, strict=True):
        await broker.subscribe(topic, handler)
    await asyncio.gather(
        *(
            step
            for topic, handler in zip(topics, leaving, strict=True)
            for step in (
                broker.unsubscribe(topic, handler),
                broker.subscribe(topic, joined[topic].append),
            )
        ),
        *(
            broker.unsubscribe(topic, handler)
            for topic, handler in zip(topics, leaving, strict=True)
        ),
    )
    for topic in topics:
        await broker.publish(topic, "hello")
    async with asyncio.timeout(5):
        while any(not received for received in joined.values()):
            await asyncio.sleep(0.01)
    assert all(received == ["hello"] for received in joined.values())


async def test_a_failing_handler_does_not_stop_redis_delivery() -> None:
    services.redis_available()
    broker = RedisBroker(services.REDIS_URL)
    await broker.start()
    topic = f"t-{uuid.uuid4()}"
    received: list[str] = []

    def broken(_: str) -> None:
        raise RuntimeError("boom")

    await broker.subscribe(topic, broken)
    await broker.subscribe(topic, received.append)
    await broker.publish(topic, "one")
    await broker.publish(topic, "two")
    await _wait_for(received, 2)
    await broker.stop()


async def test_the_subscription_is_read_over_resp2() -> None:
    """Under RESP3 every pub/sub message is a push (redis-py 8's default protocol, whose
    handler formatted each whole for a debug line): the subscribed connection speaks
    RESP2, a pub/sub connection as Redis lists it."""
    services.redis_available()
    broker = RedisBroker(services.REDIS_URL)
    await broker.start()
    admin = connect(services.REDIS_URL)
    try:
        topic = f"t-{uuid.uuid4()}"
        received: list[str] = []
        await broker.subscribe(topic, received.append)
        await broker.publish(topic, "one")
        await _wait_for(received, 1)
        subscriber = broker._subscriber
        assert subscriber is not None and subscriber._transport is not None
        host, port = subscriber._transport.get_extra_info("sockname")[:2]
        mine = [c for c in await admin.client_list() if c["addr"] == f"{host}:{port}"]
        assert len(mine) == 1 and mine[0]["sub"] == "1"
        assert mine[0]["resp"] == "2"
    finally:
        await broker.stop()
        await admin.aclose()


async def test_a_batch_cancelled_while_it_waits_for_its_replies_leaves_none_behind() -> None:
    """Its replies, when they come, must not answer the next command on the connection
    (a PING would read a PUBLISH's count)."""
    services.redis_available()
    broker = RedisBroker(services.REDIS_URL)
    await broker.start()
    topic = f"t-{uuid.uuid4()}"
    received: list[str] = []
    await broker.subscribe(topic, received.append)
    try:
        batch = asyncio.create_task(broker.publish_many([(topic, "a"), (topic, "b")]))
        await asyncio.sleep(0)  # written; its replies not read yet
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        await broker.ping()
        await broker.publish_many([(topic, "c"), (topic, "d")])
        await _wait_for(received, 4)
        assert received == ["a", "b", "c", "d"]
    finally:
        await broker.stop()


class _FakeConnection:
    """Just the fields presence reads from a socket."""

    def __init__(self, room_id: str, user_id: str, username: str) -> None:
        self.id = str(uuid.uuid4())
        self.room_id, self.user_id, self.username = room_id, user_id, username
        self.media = {"audio": False, "video": False, "screen": False}
        self.connected_at = time.time()


@pytest.fixture(params=["memory", "redis"])
async def presence_pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Presence, Presence]]:
    """Two instances' presence views (the same object in memory)."""
    if request.param == "memory":
        shared = MemoryPresence()
        yield shared, shared
        return
    services.redis_available()
    one, two = RedisPresence(services.REDIS_URL), RedisPresence(services.REDIS_URL)
    await one.start()
    await two.start()
    yield one, two
    await one.stop()
    await two.stop()


async def test_presence_is_shared_and_merged(presence_pair: tuple[Presence, Presence]) -> None:
    one, two = presence_pair
    room = f"room-{uuid.uuid4()}"
    alice_tab1: Any = _FakeConnection(room, "u-alice", "alice")
    alice_tab2: Any = _FakeConnection(room, "u-alice", "alice")
    bob: Any = _FakeConnection(room, "u-bob", "bob")
    await one.add(alice_tab1)
    await two.add(alice_tab2)
    await two.add(bob)
    alice_tab2.media["video"] = True
    await two.update(alice_tab2)
    people = await one.participants(room)
    assert [p["username"] for p in people] == ["alice", "bob"]
    assert people[0]["video"] is True
    assert await one.is_present(room, "u-bob")
    await two.remove(bob)
    assert not await one.is_present(room, "u-bob")
    await one.remove(alice_tab1)
    await two.remove(alice_tab2)
    assert await two.participants(room) == []


async def test_a_dead_instance_leaves_no_ghosts() -> None:
    services.redis_available()
    survivor, crashed = RedisPresence(services.REDIS_URL), RedisPresence(services.REDIS_URL)
    await survivor.start()
    await crashed.start()
    room = f"room-{uuid.uuid4()}"
    ghost: Any = _FakeConnection(room, "u-ghost", "ghost")
    await crashed.add(ghost)
    assert await survivor.is_present(room, "u-ghost")
    # A crash: its heartbeat key expires and nobody cleans its hash entries.
    crashed._mine.clear()
    await crashed._client.delete(crashed._instance_key())
    await crashed.stop()
    assert await survivor.participants(room) == []
    await survivor.stop()


async def test_sockets_registering_at_once_share_one_subscription() -> None:
    """Many sockets of one room arriving together: every frame delivered once each."""
    services.redis_available()
    broker = RedisBroker(services.REDIS_URL)
    await broker.start()
    hub = Hub(broker, MemoryPresence())
    room = f"room-{uuid.uuid4()}"

    received: dict[str, list[str]] = {}

    class Sink:
        def __init__(self, index: int) -> None:
            self.id = f"c{index}"
            self.room_id, self.user_id, self.username = room, f"u{index}", f"user{index}"
            self.media = {"audio": False, "video": False, "screen": False}
            self.connected_at = time.time()
            self.v1 = False  # speaks protocol v2: gets every frame
            received[self.id] = []

        def offer(self, text: str, message_id: int = 0, droppable: bool = False) -> bool:
            received[self.id].append(text)
            return True

    sinks: list[Any] = [Sink(i) for i in range(10)]
    await asyncio.gather(*(hub.register(sink) for sink in sinks))
    for index in range(5):
        await hub.publish(room, {"type": "note", "n": index})
    async with asyncio.timeout(5):
        while any(len(texts) < 5 for texts in received.values()):
            await asyncio.sleep(0.01)
    # A negative check (no condition to poll): give a duplicate time to arrive.
    await asyncio.sleep(0.2)
    assert all(len(texts) == 5 for texts in received.values()), received
    for sink in sinks:
        await hub.unregister(sink)
    assert broker._handlers.get(f"videochat:room:{room}") is None
    await broker.stop()


@pytest.fixture
async def two_hubs() -> AsyncIterator[tuple[Hub, Hub]]:
    """Two instances' hubs on the machine's Redis (broker and presence each)."""
    services.redis_available()
    hubs: list[Hub] = []
    try:
        for _ in range(2):
            presence = RedisPresence(services.REDIS_URL)
            await presence.start()
            broker = RedisBroker(services.REDIS_URL)
            await broker.start()
            hubs.append(Hub(broker, presence))
        yield hubs[0], hubs[1]
    finally:
        for hub in hubs:
            for connection in list(hub.all_connections()):
                await hub.unregister(connection)
            await hub.broker.stop()
            await hub.presence.stop()


async def test_an_older_participant_list_never_overtakes_a_newer_one(
    two_hubs: tuple[Hub, Hub],
) -> None:
    """Two instances: the list one read before the other's join, published after it.

    Each instance reads the shared presence and then publishes the list; between the
    two it may wait (the SFU's call mode, a busy loop). A list read first but published
    last left every socket with a stale list (bob missing, so nobody called him) until
    the next join or leave.
    """
    room = f"room-{uuid.uuid4()}"
    lists: dict[str, list[list[str]]] = {}

    class Sink(_FakeConnection):
        v1 = False

        def offer(self, frame: Any, message_id: int = 0, droppable: bool = False) -> bool:
            data = json.loads(frame.text)
            if data["type"] == "presence":
                lists[self.id].append([p["username"] for p in data["participants"]])
            return True

    first, second = two_hubs
    alice: Any = Sink(room, "u-alice", "alice")
    bob: Any = Sink(room, "u-bob", "bob")
    lists[alice.id], lists[bob.id] = [], []
    await first.register(alice)
    await second.register(bob)
    # The first instance read its list before bob came in, and is held.
    await second.presence.remove(bob)
    read, held = asyncio.Event(), asyncio.Event()

    async def slow_call_mode(room_id: str, participants: list[Any]) -> dict[str, Any]:
        read.set()
        await held.wait()
        return {}

    first.call_mode = slow_call_mode  # type: ignore[assignment]
    stale = asyncio.create_task(first.publish_presence(room))
    async with asyncio.timeout(5):
        await read.wait()
    await second.presence.add(bob)
    await second.publish_presence(room)
    async with asyncio.timeout(5):
        while not (lists[alice.id] and lists[bob.id]):
            await asyncio.sleep(0.01)
    held.set()
    await stale
    await asyncio.sleep(0.3)  # a negative check: give the stale list time to arrive
    assert lists[alice.id] == [["alice", "bob"]], lists
    assert lists[bob.id] == [["alice", "bob"]], lists


async def test_one_instance_also_delivers_participant_lists_in_read_order() -> None:
    """In memory too: the call mode (a database read with an SFU) sits between a list's
    read and its publish, so a later read can be published first."""
    room = f"room-{uuid.uuid4()}"
    lists: list[list[str]] = []

    class Sink(_FakeConnection):
        v1 = False

        def offer(self, frame: Any, message_id: int = 0, droppable: bool = False) -> bool:
            data = json.loads(frame.text)
            if data["type"] == "presence":
                lists.append([p["username"] for p in data["participants"]])
            return True

    hub = Hub(MemoryBroker(), MemoryPresence())
    alice: Any = Sink(room, "u-alice", "alice")
    bob: Any = Sink(room, "u-bob", "bob")
    await hub.register(alice)
    read, held = asyncio.Event(), asyncio.Event()
    calls = 0

    async def call_mode(room_id: str, participants: list[Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first list (alice alone) waits here
            read.set()
            await held.wait()
        return {}

    hub.call_mode = call_mode  # type: ignore[assignment]
    stale = asyncio.create_task(hub.publish_presence(room))
    await read.wait()
    await hub.register(bob)
    await hub.publish_presence(room)
    held.set()
    await stale
    assert lists == [["alice", "bob"], ["alice", "bob"]]  # one list per socket, the newer
    await hub.unregister(alice)
    await hub.unregister(bob)


async def test_an_older_device_state_never_overtakes_a_newer_one(
    two_hubs: tuple[Hub, Hub],
) -> None:
    """A person's devices, merged over their tabs on two instances, in read order too."""
    room = f"room-{uuid.uuid4()}"
    states: list[dict[str, Any]] = []

    class Sink(_FakeConnection):
        v1 = False

        def offer(self, frame: Any, message_id: int = 0, droppable: bool = False) -> bool:
            data = json.loads(frame.text)
            if data["type"] == "media_state":
                states.append(data)
            return True

    first, second = two_hubs
    tab1: Any = Sink(room, "u-alice", "alice")
    tab2: Any = Sink(room, "u-alice", "alice")
    bob: Any = Sink(room, "u-bob", "bob")
    await first.register(tab1)
    await first.register(bob)
    await second.register(tab2)

    # The first instance reads alice's devices (camera on in tab 1), then is held.
    read, held = asyncio.Event(), asyncio.Event()
    publish = first.publish

    async def busy_publish(room_id: str, frame: dict[str, Any], **kw: Any) -> None:
        read.set()
        await held.wait()
        await publish(room_id, frame, **kw)

    first.publish = busy_publish  # type: ignore[method-assign]
    tab1.media["video"] = True
    await first.media_changed(tab1)
    stale = asyncio.create_task(first.publish_media(room, "u-alice"))
    await read.wait()
    # Meanwhile tab 2 turns the microphone on: the newer state, published first.
    tab2.media["audio"] = True
    await second.media_changed(tab2)
    await second.publish_media(room, "u-alice")
    async with asyncio.timeout(5):
        while len(states) < 3:  # bob, tab 1 and tab 2
            await asyncio.sleep(0.01)
    held.set()
    await stale
    await asyncio.sleep(0.3)  # a negative check: give the stale state time to arrive
    assert len(states) == 3, states
    assert all(state["audio"] and state["video"] for state in states), states


async def test_a_room_without_sockets_here_keeps_no_ordering_state() -> None:
    """A list delivered locally while the broker is down (publish degraded) to a room
    with no socket here: nothing to deliver, and nothing kept for the room after."""

    class DownBroker(MemoryBroker):
        async def publish(self, topic: str, payload: Any) -> None:
            raise ConnectionError("the broker is away")

    hub = Hub(DownBroker(), MemoryPresence())
    room = f"room-{uuid.uuid4()}"
    await hub.publish_presence(room)
    await hub.publish_media(room, "u-alice")
    assert room not in hub._stamps


async def test_a_redis_that_stops_answering_is_noticed_and_healed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen Redis (SIGSTOP: no error, no close) loses the subscription without a
    word; the keeper's PING on the quiet connection notices, and the broker heals once
    Redis answers again."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    monkeypatch.setattr(redis_broker, "HEALTH_CHECK_SECONDS", 0.2)
    monkeypatch.setattr(resp, "REPLY_TIMEOUT_SECONDS", 0.5)
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    broker = RedisBroker(redis.url)
    told: list[bool] = []
    broker.watch(told.append)
    await broker.start()
    try:
        topic = f"t-{uuid.uuid4()}"
        received: list[str] = []
        await broker.subscribe(topic, received.append)
        assert redis.process is not None
        redis.process.send_signal(signal.SIGSTOP)
        try:
            async with asyncio.timeout(10):
                while not told:
                    await asyncio.sleep(0.05)
            assert told == [False] and not broker.connected
        finally:
            redis.process.send_signal(signal.SIGCONT)
        async with asyncio.timeout(15):
            while not broker.connected:
                await asyncio.sleep(0.05)
        assert told == [False, True]
        await broker.publish(topic, "after")
        await _wait_for(received, 1)
        assert received == ["after"]
    finally:
        await broker.stop()
        redis.stop()
