"""The stores and the ``@cached`` decorator: hits, misses, TTL, invalidation, the race."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import eventually
from videochat.kit.cache import (
    SESSION_INFO_KEY,
    CacheStore,
    MemoryCache,
    NullCache,
    RedisCache,
    cached,
    create_cache,
    invalidate,
)


async def test_a_miss_then_a_hit(store: CacheStore) -> None:
    hit, value, ticket = await store.lookup("room", "r1")
    assert not hit and value is None
    assert await store.store("room", "r1", {"name": "Lobby", "n": [1, 2]}, ticket, ttl=30)
    store.release("room", "r1", ticket)
    hit, value, _ = await store.lookup("room", "r1")
    assert hit and value == {"name": "Lobby", "n": [1, 2]}


async def test_invalidation_drops_the_value(store: CacheStore) -> None:
    _, _, ticket = await store.lookup("room", "r1")
    await store.store("room", "r1", {"v": 1}, ticket, ttl=30)
    store.release("room", "r1", ticket)
    await store.invalidate("room", "r1")
    hit, _, ticket = await store.lookup("room", "r1")
    assert not hit
    store.release("room", "r1", ticket)
    # Other keys and namespaces are untouched.
    _, _, ticket = await store.lookup("user", "r1")
    await store.store("user", "r1", {"v": 2}, ticket, ttl=30)
    await store.invalidate("room", "r1")
    assert (await store.lookup("user", "r1"))[0]


async def test_a_reader_that_loaded_before_an_invalidation_stores_nothing(
    store: CacheStore,
) -> None:
    """The classic race: read old row, writer commits + invalidates, reader stores old row."""
    _, _, ticket = await store.lookup("room", "r1")  # reader misses, loads the old row...
    await store.invalidate("room", "r1")  # ...a writer commits and invalidates...
    stored = await store.store("room", "r1", {"v": "old"}, ticket, ttl=30)  # ...too late
    store.release("room", "r1", ticket)
    assert not stored
    hit, _, ticket = await store.lookup("room", "r1")
    assert not hit  # the next reader goes to the database and sees the new row
    assert await store.store("room", "r1", {"v": "new"}, ticket, ttl=30)


async def test_values_expire(store: CacheStore) -> None:
    _, _, ticket = await store.lookup("room", "r1")
    await store.store("room", "r1", {"v": 1}, ticket, ttl=0.2)
    store.release("room", "r1", ticket)
    assert (await store.lookup("room", "r1"))[0]

    async def expired() -> bool:
        return not (await store.lookup("room", "r1"))[0]

    await eventually(expired, timeout=2, message="the entry outlived its 0.2 s TTL")


async def test_memory_cache_is_bounded() -> None:
    cache = MemoryCache(max_entries=3, default_ttl=30)
    for key in "abcde":
        _, _, ticket = await cache.lookup("n", key)
        await cache.store("n", key, key, ticket, ttl=30)
        cache.release("n", key, ticket)
    assert len(cache) == 3
    assert not (await cache.lookup("n", "a"))[0]  # the least recently used went first
    assert (await cache.lookup("n", "e"))[0]


def test_settings_pick_the_store() -> None:
    assert isinstance(create_cache(enabled=False, redis_url=None, ttl=1, max_entries=1), NullCache)
    assert isinstance(create_cache(enabled=True, redis_url=None, ttl=1, max_entries=1), MemoryCache)


@dataclass
class FakeSession:
    """What the decorator uses of an AsyncSession."""

    cache: CacheStore | None
    info: dict[str, Any] = field(default_factory=dict)
    new: set[Any] = field(default_factory=set)
    dirty: set[Any] = field(default_factory=set)
    deleted: set[Any] = field(default_factory=set)
    commits: int = 0
    open: bool = True

    def __post_init__(self) -> None:
        if self.cache is not None:
            self.info[SESSION_INFO_KEY] = self.cache

    def in_transaction(self) -> bool:
        return self.open

    async def commit(self) -> None:
        self.commits += 1
        self.open = False


@dataclass(frozen=True)
class Thing:
    id: str
    name: str


class Database:
    """A stand-in table the cached read loads from."""

    def __init__(self) -> None:
        self.rows = {"t1": "first"}
        self.loads = 0
        self.gate: asyncio.Event | None = None

    async def read(self, session: Any, thing_id: str) -> Thing | None:
        self.loads += 1
        name = self.rows.get(thing_id)
        if self.gate is not None:
            await self.gate.wait()
        return Thing(thing_id, name) if name is not None else None


def _cached_read(db: Database) -> Any:
    return cached(
        "thing",
        key=lambda thing_id: thing_id,
        dump=lambda thing: {"id": thing.id, "name": thing.name},
        load=lambda data: Thing(**data),
    )(db.read)


async def test_decorator_reads_through_once_then_serves_the_cache(store: CacheStore) -> None:
    db = Database()
    read = _cached_read(db)
    session = FakeSession(store)
    lookups: list[tuple[str, bool]] = []
    store.on_lookup = lambda namespace, hit: lookups.append((namespace, hit))
    first = await read(session, "t1")
    second = await read(FakeSession(store), "t1")
    assert first == second == Thing("t1", "first")
    assert first is not second  # every caller gets its own object
    assert db.loads == 1
    assert session.commits == 1  # the read-only transaction ended before the load
    assert lookups == [("thing", False), ("thing", True)]  # the hook counts (metrics)


async def test_decorator_does_not_cache_not_found_and_sees_invalidation(
    store: CacheStore,
) -> None:
    db = Database()
    read = _cached_read(db)
    assert await read(FakeSession(store), "t2") is None
    db.rows["t2"] = "created"  # creating needs no invalidation: absence is never cached
    assert await read(FakeSession(store), "t2") == Thing("t2", "created")
    db.rows["t2"] = "renamed"
    await invalidate(FakeSession(store), "thing", "t2")
    assert await read(FakeSession(store), "t2") == Thing("t2", "renamed")


async def test_decorator_loses_the_race_safely(store: CacheStore) -> None:
    db = Database()
    read = _cached_read(db)
    db.gate = asyncio.Event()
    slow = asyncio.create_task(read(FakeSession(store), "t1"))  # loads "first", then waits
    await eventually(lambda: db.loads == 1)
    db.rows["t1"] = "second"  # the writer commits...
    await invalidate(FakeSession(store), "thing", "t1")  # ...and invalidates
    db.gate.set()
    assert (await slow).name == "first"  # the slow reader answers what it read...
    db.gate = None
    # ...but did not put it in the cache: the next read sees the write.
    assert (await read(FakeSession(store), "t1")).name == "second"


async def test_decorator_without_a_cache_or_with_pending_writes_reads_through(
    store: CacheStore,
) -> None:
    db = Database()
    read = _cached_read(db)
    await read(FakeSession(None), "t1")
    await read(FakeSession(NullCache()), "t1")
    dirty = FakeSession(store, new={object()})
    await read(dirty, "t1")
    assert dirty.commits == 0  # never commits someone's pending writes
    await read(FakeSession(store), "t1")
    assert db.loads == 4  # nothing was cached by the three reads above


@pytest.mark.redis
async def test_redis_unreachable_reads_through() -> None:
    from videochat.kit.cache import RedisCache

    cache = RedisCache("redis://127.0.0.1:1/0", default_ttl=30)
    try:
        db = Database()
        read = _cached_read(db)
        assert await read(FakeSession(cache), "t1") == Thing("t1", "first")
        await invalidate(FakeSession(cache), "thing", "t1")  # logged, not raised
    finally:
        await cache.close()


@pytest.mark.redis
async def test_redis_cache_reads_through_while_redis_is_away(tmp_path: Path) -> None:
    """A lookup during an outage is a miss at once (the breaker skips Redis); it heals."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    from tests.processes import ThrowawayRedis

    redis = ThrowawayRedis(tmp_path)
    redis.start()
    changes: list[tuple[str, bool]] = []
    store = RedisCache(redis.url, default_ttl=30, on_outage=lambda p, d: changes.append((p, d)))
    try:
        hit, _, ticket = await store.lookup("room", "1")
        assert await store.store("room", "1", {"name": "x"}, ticket, 30)
        assert (await store.lookup("room", "1"))[:2] == (True, {"name": "x"})
        redis.stop()
        assert await store.lookup("room", "1") == (False, None, None)  # read through
        assert store.breaker.open  # the next reads skip Redis for a moment
        assert await store.lookup("room", "1") == (False, None, None)
        assert not await store.store("room", "1", {"name": "y"}, None, 30)
        redis.start()
        store.breaker.retry_seconds = 0
        store.breaker._retry_at = 0.0  # as if retry_seconds had passed
        hit, _, ticket = await store.lookup("room", "1")
        assert not hit and ticket is not None  # Redis came back empty: a fresh miss
        assert changes == [("cache", True), ("cache", False)]
    finally:
        await store.close()
        redis.stop()
