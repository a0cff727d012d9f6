"""Who is connected to each room: in this process, or shared through Redis.

With several instances each one writes its own sockets into a Redis hash per room
and keeps an "instance alive" key with a short expiry fresh; readers ignore (and drop)
entries whose instance key has expired, so a crashed instance leaves no ghosts. After
Redis lost data (a restart, a restore from a snapshot) each instance re-asserts exactly
its live sockets; while Redis is away, each instance sees its own sockets only.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
from collections import defaultdict
from typing import Any

import structlog

from videochat.kit.ids import new_id
from videochat.kit.redis_client import connect
from videochat.observability import metrics
from videochat.realtime.connection import Connection

log = structlog.get_logger(__name__)

INSTANCE_TTL_SECONDS = 30
HEARTBEAT_SECONDS = 10
MEDIA_KINDS = ("audio", "video", "screen")
# A room's hash outlives its last heartbeat by this much: rooms whose instances all
# died (and that nobody reads, which would clean them) go away by themselves.
ROOM_TTL_SECONDS = 3 * INSTANCE_TTL_SECONDS


def _entry(connection: Connection) -> dict[str, Any]:
    return {
        "connection_id": connection.id,
        "user_id": connection.user_id,
        "username": connection.username,
        "since": getattr(connection, "connected_at", 0.0),
        **connection.media,
    }


def _by_time(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Redis hashes have no order: sort by connection time so every instance agrees.
    return sorted(entries, key=lambda e: (e.get("since", 0.0), e.get("connection_id", "")))


def _media_of(entries: list[dict[str, Any]], user_id: str) -> dict[str, bool]:
    state = dict.fromkeys(MEDIA_KINDS, False)
    for entry in entries:
        if entry["user_id"] == user_id:
            for kind in MEDIA_KINDS:
                state[kind] = state[kind] or bool(entry.get(kind))
    return state


def merge_participants(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per user, ordered by their earliest connection.

    ``connection_id`` is the user's *latest* connection: the one that is in the call
    (a second tab takes the call over from the first; a reconnect's new socket
    replaces one the server has not yet noticed is dead). A device is on if any of
    the user's tabs has it on.
    """
    people: dict[str, dict[str, Any]] = {}
    for entry in _by_time(entries):
        person = people.setdefault(
            entry["user_id"],
            {
                "user_id": entry["user_id"],
                "username": entry["username"],
                "audio": False,
                "video": False,
                "screen": False,
            },
        )
        if entry.get("connection_id"):
            person["connection_id"] = entry["connection_id"]
        for kind in MEDIA_KINDS:
            person[kind] = person[kind] or bool(entry.get(kind))
    return list(people.values())


class Presence(abc.ABC):
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def resync(self) -> None:
        """Make the shared view hold exactly this instance's sockets (after an outage)."""
        return None

    @abc.abstractmethod
    async def add(self, connection: Connection) -> None:
        """Record a socket in its room."""

    @abc.abstractmethod
    async def update(self, connection: Connection) -> None:
        """Record a socket's new media state."""

    @abc.abstractmethod
    async def remove(self, connection: Connection) -> None:
        """Forget a socket."""

    @abc.abstractmethod
    async def entries(self, room_id: str) -> list[dict[str, Any]]:
        """Every socket in the room, on any instance (one entry per connection)."""

    async def participants(self, room_id: str) -> list[dict[str, Any]]:
        """Everyone connected to the room, on any instance, one entry per user."""
        return merge_participants(await self.entries(room_id))

    async def stamped_entries(self, room_id: str) -> tuple[int | None, list[dict[str, Any]]]:
        """``entries`` with a stamp that orders this read among every instance's reads.

        A later read has a greater stamp (None: no order known, as while Redis is away):
        the hub delivers what is read from here in stamp order only, so a state read
        first but published last (its instance was busy meanwhile) cannot undo a newer
        one.
        """
        return None, await self.entries(room_id)

    async def snapshot(self, room_id: str) -> tuple[int | None, list[dict[str, Any]]]:
        """``participants``, stamped (see ``stamped_entries``)."""
        stamp, entries = await self.stamped_entries(room_id)
        return stamp, merge_participants(entries)

    async def media_snapshot(
        self, room_id: str, user_id: str
    ) -> tuple[int | None, dict[str, bool]]:
        """The user's devices as the participant list shows them (on if any tab has it
        on), stamped (see ``stamped_entries``)."""
        stamp, entries = await self.stamped_entries(room_id)
        return stamp, _media_of(entries, user_id)

    async def is_present(self, room_id: str, user_id: str) -> bool:
        """Whether the user has a socket open in the room, on any instance."""
        return any(entry["user_id"] == user_id for entry in await self.entries(room_id))

    async def connections_of(self, room_id: str, user_id: str) -> list[str]:
        """The user's connection ids in the room, oldest first (the last is in the call)."""
        return [
            entry["connection_id"]
            for entry in _by_time(await self.entries(room_id))
            if entry["user_id"] == user_id and entry.get("connection_id")
        ]


class MemoryPresence(Presence):
    def __init__(self) -> None:
        self._rooms: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._reads = 0  # the stamp of the last stamped read

    async def add(self, connection: Connection) -> None:
        self._rooms[connection.room_id][connection.id] = _entry(connection)

    async def update(self, connection: Connection) -> None:
        await self.add(connection)

    async def remove(self, connection: Connection) -> None:
        room = self._rooms.get(connection.room_id)
        if room is not None:
            room.pop(connection.id, None)
            if not room:
                del self._rooms[connection.room_id]

    async def entries(self, room_id: str) -> list[dict[str, Any]]:
        return list(self._rooms.get(room_id, {}).values())

    async def stamped_entries(self, room_id: str) -> tuple[int | None, list[dict[str, Any]]]:
        self._reads += 1
        return self._reads, await self.entries(room_id)


class RedisPresence(Presence):
    """Each instance's sockets in a Redis hash per room, re-asserted after Redis lost them.

    An instance writes a fresh random *epoch* into its "alive" key at every heartbeat and
    reads the previous one back (``SET ... GET``): another value (or none), or another
    Redis ``run_id``, means Redis may have lost this instance's writes (restarted empty,
    or restored from an older snapshot). It then re-asserts exactly its live sockets:
    writes them all again, and deletes its entries that are no longer live, in every room
    it has listed in its room index (kept in Redis too, so a snapshot brings back the
    rooms it may have stale entries in).
    While Redis is unreachable, reads answer with this instance's own sockets.
    """

    def __init__(
        self, url: str, *, instance_id: str | None = None, heartbeat_seconds: float | None = None
    ) -> None:
        self._client = connect(url, decode_responses=True)
        self.instance_id = instance_id or new_id()
        self.heartbeat_seconds = heartbeat_seconds or HEARTBEAT_SECONDS
        self._epoch = new_id()
        self._run_id: str | None = None  # the Redis server's, as of the last heartbeat
        self._heartbeat: asyncio.Task[None] | None = None
        # This instance's entries, re-written at every heartbeat so they come back
        # by themselves after Redis restarts empty.
        self._mine: dict[tuple[str, str], str] = {}
        # A write or delete did not reach Redis: re-assert at the next heartbeat.
        self._dirty = False
        self._degraded = False

    @staticmethod
    def _room_key(room_id: str) -> str:
        return f"videochat:presence:{room_id}"

    def _instance_key(self, instance_id: str | None = None) -> str:
        return f"videochat:instance:{instance_id or self.instance_id}"

    def _index_key(self) -> str:
        return f"videochat:instance-rooms:{self.instance_id}"

    async def start(self) -> None:
        await self._client.set(self._instance_key(), self._epoch, ex=INSTANCE_TTL_SECONDS)
        self._run_id = str((await self._client.info("server")).get("run_id", ""))
        self._heartbeat = asyncio.create_task(self._beat(), name="presence-heartbeat")

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        with contextlib.suppress(Exception):
            # A clean stop removes this instance's sockets at once.
            async with self._client.pipeline(transaction=False) as pipe:
                for room_id, connection_id in self._mine:
                    pipe.hdel(self._room_key(room_id), connection_id)
                pipe.delete(self._instance_key(), self._index_key())
                await pipe.execute()
        with contextlib.suppress(Exception):
            await self._client.aclose()

    def _unreachable(self, op: str, exc: BaseException) -> None:
        self._dirty = True
        if not self._degraded:
            self._degraded = True
            log.warning("presence.redis_unreachable", op=op, error=str(exc))
            metrics.redis_degraded("presence", True)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.sync()
            except Exception as exc:
                self._unreachable("heartbeat", exc)

    async def resync(self) -> None:
        self._dirty = True
        try:
            await self.sync()
        except Exception as exc:
            self._unreachable("resync", exc)

    async def sync(self) -> None:
        """Keep this instance alive in Redis; re-assert its sockets if Redis lost them."""
        # A new epoch at every beat: a snapshot restored later holds an older one.
        epoch, written = new_id(), self._epoch
        self._epoch = epoch
        previous = await self._client.set(
            self._instance_key(), epoch, ex=INSTANCE_TTL_SECONDS, get=True
        )
        # A restart (even from a snapshot taken after the last beat) changes the run id.
        run_id = str((await self._client.info("server")).get("run_id", ""))
        restarted, self._run_id = run_id != self._run_id, run_id
        if previous != written or restarted or self._dirty:
            await self._reassert()
        else:
            async with self._client.pipeline(transaction=False) as pipe:
                for (room_id, connection_id), value in list(self._mine.items()):
                    pipe.hset(self._room_key(room_id), connection_id, value)
                for room_id in {room_id for room_id, _ in self._mine}:
                    pipe.expire(self._room_key(room_id), ROOM_TTL_SECONDS)
                pipe.expire(self._index_key(), ROOM_TTL_SECONDS)
                await pipe.execute()
        if self._degraded:
            self._degraded = False
            log.info("presence.redis_restored")
            metrics.redis_degraded("presence", False)

    async def _reassert(self) -> None:
        """Write exactly this instance's live sockets: add the missing, drop the stale."""
        self._dirty = False
        live_rooms = {room_id for room_id, _ in self._mine}
        listed = {str(room) for room in await self._client.smembers(self._index_key())}
        for room_id in sorted(listed | live_rooms):
            key = self._room_key(room_id)
            raw: dict[Any, Any] = await self._client.hgetall(key)
            stale = [
                connection_id
                for connection_id, value in raw.items()
                if (room_id, connection_id) not in self._mine
                and _instance_of(value) == self.instance_id
            ]
            mine: dict[Any, Any] = {c: v for (r, c), v in list(self._mine.items()) if r == room_id}
            async with self._client.pipeline(transaction=False) as pipe:
                if stale:
                    pipe.hdel(key, *stale)
                if mine:
                    pipe.hset(key, mapping=mine)
                    pipe.expire(key, ROOM_TTL_SECONDS)
                    pipe.sadd(self._index_key(), room_id)
                else:
                    pipe.srem(self._index_key(), room_id)
                await pipe.execute()
            if stale:
                log.info("presence.stale_removed", room_id=room_id, count=len(stale))
        await self._client.expire(self._index_key(), ROOM_TTL_SECONDS)

    async def add(self, connection: Connection) -> None:
        value = json.dumps({**_entry(connection), "instance": self.instance_id})
        self._mine[(connection.room_id, connection.id)] = value
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hset(self._room_key(connection.room_id), connection.id, value)
                pipe.sadd(self._index_key(), connection.room_id)
                await pipe.execute()
        except Exception as exc:  # written at the next heartbeat that reaches Redis
            self._unreachable("add", exc)

    async def update(self, connection: Connection) -> None:
        await self.add(connection)

    async def remove(self, connection: Connection) -> None:
        self._mine.pop((connection.room_id, connection.id), None)
        try:
            await self._client.hdel(self._room_key(connection.room_id), connection.id)
        except Exception as exc:  # deleted by the re-assertion once Redis is back
            self._unreachable("remove", exc)

    def _local_entries(self, room_id: str) -> list[dict[str, Any]]:
        return [json.loads(v) for (r, _), v in list(self._mine.items()) if r == room_id]

    async def entries(self, room_id: str) -> list[dict[str, Any]]:
        return (await self._read(room_id, stamped=False))[1]

    async def stamped_entries(self, room_id: str) -> tuple[int | None, list[dict[str, Any]]]:
        return await self._read(room_id, stamped=True)

    async def _read(
        self, room_id: str, *, stamped: bool
    ) -> tuple[int | None, list[dict[str, Any]]]:
        try:
            return await self._shared_entries(room_id, stamped=stamped)
        except Exception as exc:  # Redis is away: this instance's own view
            self._unreachable("read", exc)
            return None, self._local_entries(room_id)

    async def _shared_entries(
        self, room_id: str, *, stamped: bool
    ) -> tuple[int | None, list[dict[str, Any]]]:
        """The room's entries; ``stamped``: with Redis's clock (µs) read in the same
        transaction, so every write to the room is before or after it in Redis's order
        (the other reads, who is present and on which socket, need no order)."""
        stamp: int | None = None
        if stamped:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.time()
                pipe.hgetall(self._room_key(room_id))
                (seconds, micros), raw = await pipe.execute()
            stamp = int(seconds) * 1_000_000 + int(micros)
        else:
            raw = await self._client.hgetall(self._room_key(room_id))
        entries = {key: json.loads(value) for key, value in raw.items()}
        instances = sorted({entry["instance"] for entry in entries.values()})
        alive_flags = (
            await self._client.mget([self._instance_key(i) for i in instances]) if instances else []
        )
        alive = {i for i, flag in zip(instances, alive_flags, strict=True) if flag}
        ghosts = [key for key, entry in entries.items() if entry["instance"] not in alive]
        if ghosts:  # left behind by an instance that died without cleaning up
            await self._client.hdel(self._room_key(room_id), *ghosts)
        dead = set(ghosts)
        # Entries written before connection ids were stored carry it as their key only.
        return stamp, [
            {"connection_id": key, **entry} for key, entry in entries.items() if key not in dead
        ]


def _instance_of(value: str) -> str | None:
    try:
        entry = json.loads(value)
    except ValueError:
        return None
    return entry.get("instance") if isinstance(entry, dict) else None
