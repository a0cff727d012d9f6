"""Who is connected to each room: in this process, or shared through Redis.

With several instances each one writes its own sockets into a Redis hash per room
and keeps an "instance alive" key with a short expiry fresh; readers ignore entries
whose instance key has expired, so a crashed instance leaves no ghosts.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
from collections import defaultdict
from typing import Any

import redis.asyncio as redis
import structlog

from videochat.kit.ids import new_id
from videochat.realtime.connection import Connection

log = structlog.get_logger(__name__)

INSTANCE_TTL_SECONDS = 30
HEARTBEAT_SECONDS = 10
MEDIA_KINDS = ("audio", "video", "screen")


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

    async def media_of(self, room_id: str, user_id: str) -> dict[str, bool]:
        """The user's devices, as the participant list shows them (on if any tab has it on)."""
        state = dict.fromkeys(MEDIA_KINDS, False)
        for entry in await self.entries(room_id):
            if entry["user_id"] == user_id:
                for kind in MEDIA_KINDS:
                    state[kind] = state[kind] or bool(entry.get(kind))
        return state

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


class RedisPresence(Presence):
    def __init__(self, url: str, *, instance_id: str | None = None) -> None:
        self._client = redis.Redis.from_url(url, decode_responses=True)
        self.instance_id = instance_id or new_id()
        self._heartbeat: asyncio.Task[None] | None = None
        # This instance's entries, re-written at every heartbeat so they come back
        # by themselves after Redis restarts empty.
        self._mine: dict[tuple[str, str], str] = {}

    @staticmethod
    def _room_key(room_id: str) -> str:
        return f"videochat:presence:{room_id}"

    def _instance_key(self, instance_id: str | None = None) -> str:
        return f"videochat:instance:{instance_id or self.instance_id}"

    async def start(self) -> None:
        await self._client.set(self._instance_key(), "1", ex=INSTANCE_TTL_SECONDS)
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
                pipe.delete(self._instance_key())
                await pipe.execute()
        await self._client.aclose()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.set(self._instance_key(), "1", ex=INSTANCE_TTL_SECONDS)
                    for (room_id, connection_id), value in list(self._mine.items()):
                        pipe.hset(self._room_key(room_id), connection_id, value)
                    await pipe.execute()
            except Exception:
                log.warning("presence.heartbeat_failed", exc_info=True)

    async def add(self, connection: Connection) -> None:
        value = json.dumps({**_entry(connection), "instance": self.instance_id})
        self._mine[(connection.room_id, connection.id)] = value
        await self._client.hset(self._room_key(connection.room_id), connection.id, value)

    async def update(self, connection: Connection) -> None:
        await self.add(connection)

    async def remove(self, connection: Connection) -> None:
        self._mine.pop((connection.room_id, connection.id), None)
        await self._client.hdel(self._room_key(connection.room_id), connection.id)

    async def entries(self, room_id: str) -> list[dict[str, Any]]:
        raw: dict[Any, Any] = await self._client.hgetall(self._room_key(room_id))
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
        return [
            {"connection_id": key, **entry} for key, entry in entries.items() if key not in dead
        ]
