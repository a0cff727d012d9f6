"""The configured Janus instances, and which one a room's call uses.

The choice is a row in ``sfu_rooms`` (room -> Janus), inserted by whichever videochat
instance first needs it: the primary key makes a second insert a no-op, and both read
back the same row, so every videochat instance sends a room's people to the same Janus.
A new room goes to the instance with the fewest rooms (ties: the room id's hash), so
rooms spread over the instances.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import httpx
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.config import SfuSettings
from videochat.db.models import SfuRoom
from videochat.exceptions import NotFound
from videochat.sfu.janus import JanusAdmin
from videochat.sfu.videoroom import VideoRoom, janus_room_id


@dataclass(slots=True, frozen=True)
class JanusInstance:
    api_url: str  # as videochat reaches it; the instance's name in the database
    admin: JanusAdmin
    public_url: str  # as browsers reach it


class JanusPool:
    """One HTTP client for every configured Janus instance (opened by ``runtime``)."""

    def __init__(self, settings: SfuSettings) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(timeout=settings.timeout_seconds)
        secret = settings.admin_secret.get_secret_value() if settings.admin_secret else ""
        self.instances = [
            JanusInstance(api, JanusAdmin(self.http, admin, secret, settings.retries), public)
            for api, admin, public in zip(
                settings.janus_urls, settings.admin_urls, settings.public_urls, strict=True
            )
        ]
        self._by_url = {instance.api_url: instance for instance in self.instances}

    async def close(self) -> None:
        await self.http.aclose()

    def instance(self, api_url: str) -> JanusInstance:
        """The instance a row names; NotFound when it is no longer configured."""
        found = self._by_url.get(api_url)
        if found is None:
            raise NotFound("this call's SFU is no longer configured")
        return found

    def videoroom(self, row: SfuRoom) -> VideoRoom:
        return VideoRoom(self.instance(row.janus_url).admin, row.janus_room, row.secret)

    async def assignment(self, session: AsyncSession, room_id: str) -> SfuRoom:
        """The room's Janus: the stored choice, or a new one stored for every instance."""
        row = await session.get(SfuRoom, room_id)
        if row is not None and row.janus_url in self._by_url:
            return row
        if row is not None:  # its instance was taken out of the configuration
            await session.delete(row)
            await session.flush()
        chosen = await self._least_loaded(session, room_id)
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await session.execute(
            insert(SfuRoom)
            .values(
                room_id=room_id,
                janus_url=chosen,
                janus_room=janus_room_id(room_id),
                secret=secrets.token_urlsafe(24),
            )
            .on_conflict_do_nothing()
        )
        stored = await session.scalar(
            select(SfuRoom)
            .where(SfuRoom.room_id == room_id)
            .execution_options(populate_existing=True)
        )
        assert stored is not None
        return stored

    async def _least_loaded(self, session: AsyncSession, room_id: str) -> str:
        rows = await session.execute(
            select(SfuRoom.janus_url, func.count()).group_by(SfuRoom.janus_url)
        )
        load: dict[str, int] = {url: count for url, count in rows}
        digest = hashlib.sha256(room_id.encode()).digest()
        start = int.from_bytes(digest[:4], "big") % len(self.instances)
        # Ties go to the hash's pick, then the next ones in order.
        order = self.instances[start:] + self.instances[:start]
        return min(order, key=lambda instance: load.get(instance.api_url, 0)).api_url
