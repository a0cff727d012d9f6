"""A read-through cache for hot lookups, in process (cachetools) or in Redis.

Values are plain data (dicts, lists, strings, numbers), never ORM objects: the
decorator turns a function's result into plain data with ``dump`` and back with
``load``, so a hit gives every caller its own fresh object.

Invalidation is explicit: every write calls :func:`invalidate` for the keys it
changed, **after** its commit. That alone is not enough, because of the classic race
(a reader loads the old row, a writer commits and invalidates, then the reader stores
the row it loaded): so each read that misses takes a *ticket* first, and its value is
stored only if no invalidation of that key happened since. In memory a ticket is an
object the invalidation marks void; in Redis it is the key's generation counter, which
an invalidation increments and a Lua script compares before it sets the value.

A read that misses ends the session's read-only transaction before loading, so that
even under snapshot isolation (where reads see the snapshot taken when the
transaction began) the load sees every commit made before its ticket was taken. Use
cached reads only in read paths: a session with pending changes reads through.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import structlog
from cachetools import TLRUCache

from videochat.kit.redis_client import Breaker, connect

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Where a session carries its cache (``async_sessionmaker(info=...)``).
SESSION_INFO_KEY = "videochat.cache"
# Told of every cached read, (namespace, hit): the builder passes a metrics counter.
LookupHook = Callable[[str, bool], None]
# Bumped when a cached shape changes, so instances of two versions never share values.
KEY_VERSION = "v2"  # v2: a room's view lists its bans


class Ticket(Protocol):
    """What a miss hands back, to be shown when storing the loaded value."""


class CacheStore(Protocol):
    """One cache backend: memory or Redis."""

    default_ttl: float
    on_lookup: LookupHook | None

    async def lookup(self, namespace: str, key: str) -> tuple[bool, Any, Ticket | None]:
        """``(True, value, None)`` on a hit; ``(False, None, ticket)`` on a miss."""
        ...

    async def store(
        self, namespace: str, key: str, value: Any, ticket: Ticket | None, ttl: float
    ) -> bool:
        """Store the value unless the key was invalidated since the ticket was taken."""
        ...

    def release(self, namespace: str, key: str, ticket: Ticket | None) -> None:
        """Forget a ticket (the load failed or its value was stored)."""
        ...

    async def invalidate(self, namespace: str, key: str) -> None:
        """Drop the value and void every ticket taken for it."""
        ...

    async def clear(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(eq=False)
class _MemoryTicket:
    valid: bool = True


@dataclass
class MemoryCache:
    """In-process LRU with a TTL per entry (cachetools' TLRUCache)."""

    max_entries: int = 10_000
    default_ttl: float = 30.0
    on_lookup: LookupHook | None = None
    _values: TLRUCache[str, tuple[float, Any]] = field(init=False, repr=False)
    _pending: dict[str, list[_MemoryTicket]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._values = TLRUCache(
            maxsize=self.max_entries,
            ttu=lambda _key, entry, now: now + entry[0],
            timer=time.monotonic,
        )

    @staticmethod
    def _key(namespace: str, key: str) -> str:
        return f"{namespace}:{key}"

    async def lookup(self, namespace: str, key: str) -> tuple[bool, Any, Ticket | None]:
        full = self._key(namespace, key)
        entry = self._values.get(full)
        if entry is not None:
            return True, entry[1], None
        ticket = _MemoryTicket()
        self._pending.setdefault(full, []).append(ticket)
        return False, None, ticket

    async def store(
        self, namespace: str, key: str, value: Any, ticket: Ticket | None, ttl: float
    ) -> bool:
        full = self._key(namespace, key)
        if not isinstance(ticket, _MemoryTicket) or not ticket.valid:
            return False
        self._values[full] = (ttl, value)
        return True

    def release(self, namespace: str, key: str, ticket: Ticket | None) -> None:
        full = self._key(namespace, key)
        waiting = self._pending.get(full)
        if waiting is None:
            return
        if ticket in waiting:
            waiting.remove(ticket)
        if not waiting:
            del self._pending[full]

    async def invalidate(self, namespace: str, key: str) -> None:
        full = self._key(namespace, key)
        self._values.pop(full, None)
        for ticket in self._pending.pop(full, []):
            ticket.valid = False

    async def clear(self) -> None:
        self._values.clear()
        for waiting in self._pending.values():
            for ticket in waiting:
                ticket.valid = False
        self._pending.clear()

    async def close(self) -> None:
        await self.clear()

    def __len__(self) -> int:
        return len(self._values)


# KEYS[1] value, KEYS[2] generation; ARGV[1] the generation the reader saw, ARGV[2] the
# value, ARGV[3] its lifetime in milliseconds. Set only while the generation is unchanged.
_STORE_IF_CURRENT = """
local current = redis.call('GET', KEYS[2]) or '0'
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class RedisCache:
    """Values and their generations in Redis, shared by every instance.

    Redis being unreachable makes reads go to the database (a miss, nothing stored), and
    for ``breaker.retry_seconds`` after a failure Redis is not even tried, so an outage
    costs no time per read. An invalidation that could not reach Redis is logged, and
    the value's TTL bounds how long a stale copy can outlive it.
    """

    # A generation outlives any read in flight by far; it expires so keys do not pile up.
    GENERATION_TTL_SECONDS = 24 * 3600

    def __init__(
        self,
        url: str,
        *,
        default_ttl: float = 30.0,
        prefix: str = "videochat:cache",
        on_lookup: LookupHook | None = None,
        on_outage: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.default_ttl = default_ttl
        self.on_lookup = on_lookup
        self._prefix = f"{prefix}:{KEY_VERSION}"
        self._redis = connect(url, socket_timeout=2.0)
        self.breaker = Breaker("cache", on_change=on_outage)
        self._store_script = self._redis.register_script(_STORE_IF_CURRENT)

    def _keys(self, namespace: str, key: str) -> tuple[str, str]:
        return (
            f"{self._prefix}:val:{namespace}:{key}",
            f"{self._prefix}:gen:{namespace}:{key}",
        )

    async def lookup(self, namespace: str, key: str) -> tuple[bool, Any, Ticket | None]:
        if self.breaker.open:
            return False, None, None
        value_key, generation_key = self._keys(namespace, key)
        try:
            raw, generation = await self._redis.mget(value_key, generation_key)
        except Exception as exc:  # Redis down: go to the database, store nothing
            self.breaker.failed(exc)
            return False, None, None
        self.breaker.succeeded()
        if raw is not None:
            return True, json.loads(raw), None
        if isinstance(generation, bytes):
            generation = generation.decode()
        return False, None, generation or "0"

    async def store(
        self, namespace: str, key: str, value: Any, ticket: Ticket | None, ttl: float
    ) -> bool:
        if not isinstance(ticket, str):
            return False
        value_key, generation_key = self._keys(namespace, key)
        try:
            stored = await self._store_script(
                keys=[value_key, generation_key],
                args=[ticket, json.dumps(value), max(1, int(ttl * 1000))],
            )
        except Exception as exc:
            self.breaker.failed(exc)
            return False
        return bool(stored)

    def release(self, namespace: str, key: str, ticket: Ticket | None) -> None:
        return None

    async def invalidate(self, namespace: str, key: str) -> None:
        value_key, generation_key = self._keys(namespace, key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(generation_key)
                pipe.expire(generation_key, self.GENERATION_TTL_SECONDS)
                pipe.delete(value_key)
                await pipe.execute()
        except Exception as exc:
            # Not skipped while the breaker is open: a lost invalidation is worse than a
            # slow one. Bounded by the value's TTL when it is lost.
            self.breaker.failed(exc)
            log.error("cache.invalidate_failed", namespace=namespace, key=key, error=str(exc))

    async def clear(self) -> None:
        async for name in self._redis.scan_iter(match=f"{self._prefix}:val:*", count=500):
            await self._redis.delete(name)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class NullCache:
    """Caching turned off: every read goes to the database."""

    default_ttl = 0.0
    on_lookup: LookupHook | None = None

    async def lookup(self, namespace: str, key: str) -> tuple[bool, Any, Ticket | None]:
        return False, None, None

    async def store(
        self, namespace: str, key: str, value: Any, ticket: Ticket | None, ttl: float
    ) -> bool:
        return False

    def release(self, namespace: str, key: str, ticket: Ticket | None) -> None:
        return None

    async def invalidate(self, namespace: str, key: str) -> None:
        return None

    async def clear(self) -> None:
        return None

    async def close(self) -> None:
        return None


def create_cache(
    *,
    enabled: bool,
    redis_url: str | None,
    ttl: float,
    max_entries: int,
    on_lookup: LookupHook | None = None,
    on_outage: Callable[[str, bool], None] | None = None,
) -> CacheStore:
    """The store the settings ask for: off, Redis when configured, else memory."""
    if not enabled:
        return NullCache()
    if redis_url:
        return RedisCache(redis_url, default_ttl=ttl, on_lookup=on_lookup, on_outage=on_outage)
    return MemoryCache(max_entries=max_entries, default_ttl=ttl, on_lookup=on_lookup)


def store_of(session: Any) -> CacheStore | None:
    """The cache a session was made with (none for sessions outside the app)."""
    info = getattr(session, "info", None)
    if not isinstance(info, dict):
        return None
    return cast(CacheStore | None, info.get(SESSION_INFO_KEY))


def cached(
    namespace: str,
    *,
    key: Callable[..., object],
    dump: Callable[[T], Any],
    load: Callable[[Any], T],
    ttl: float | None = None,
) -> Callable[[Callable[..., Awaitable[T | None]]], Callable[..., Awaitable[T | None]]]:
    """Cache an ``async def read(session, *args)``'s result under ``key(*args)``.

    ``None`` results (not found) are not cached, so creating a row needs no invalidation.
    The session's cache comes from ``session.info``; a session without one reads through.
    """

    def decorate(
        read: Callable[..., Awaitable[T | None]],
    ) -> Callable[..., Awaitable[T | None]]:
        @functools.wraps(read)
        async def wrapper(session: Any, *args: Any, **kwargs: Any) -> T | None:
            store = store_of(session)
            if store is None or isinstance(store, NullCache):
                return await read(session, *args, **kwargs)
            name = str(key(*args, **kwargs))
            hit, value, ticket = await store.lookup(namespace, name)
            if store.on_lookup is not None:
                store.on_lookup(namespace, hit)
            if hit:
                return load(value)
            try:
                clean = not (session.new or session.dirty or session.deleted)
                if clean and session.in_transaction():
                    # A fresh snapshot: see every commit made before the ticket (needed
                    # for correctness under snapshot isolation). A plain commit, not the
                    # unit of work's: the after-commit hooks belong to the flow's own
                    # commit. Nothing is pending, so it ends a read-only transaction;
                    # a write flow (UPDATE statements run directly) must not read
                    # through the cache before it commits.
                    await session.commit()
                result = await read(session, *args, **kwargs)
                if result is not None and clean:
                    await store.store(
                        namespace,
                        name,
                        dump(result),
                        ticket,
                        store.default_ttl if ttl is None else ttl,
                    )
            finally:
                store.release(namespace, name, ticket)
            return result

        return wrapper

    return decorate


async def invalidate(session: Any, namespace: str, *keys: object) -> None:
    """Drop cached values after a write committed (call it after the commit)."""
    store = store_of(session)
    if store is None:
        return
    for name in keys:
        await store.invalidate(namespace, str(name))
