"""Whether a room's call is a peer-to-peer mesh or on the SFU (Janus).

A call goes on the SFU once more than ``VIDEOCHAT_SFU__THRESHOLD`` people are in the
room (0: always), and stays there until the room empties: people who are already in
the call switch once, not back and forth around the threshold. The room's ``sfu_rooms``
row is the switch, so every videochat instance sees the same mode: it is stored when
the call goes on the SFU and removed (grants withdrawn, VideoRoom destroyed) when the
last person leaves; a recording still running then ends with the call (its video is
queued). Every participant list (``presence``) carries the mode, so clients
learn it with the list they build the call from.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videochat.db.models import SfuRoom
from videochat.db.unit_of_work import unit_of_work
from videochat.realtime.hub import Hub
from videochat.sfu import recording, service
from videochat.sfu.instances import JanusPool

MESH = "mesh"
SFU = "sfu"


def wants_sfu(pool: JanusPool, present: int) -> bool:
    """Whether a call of ``present`` people goes on the SFU (absent a sticky switch)."""
    threshold = pool.settings.threshold
    return threshold == 0 or present > threshold


async def on_sfu(session: AsyncSession, pool: JanusPool, room_id: str, present: int) -> bool:
    """Whether the room's call is on the SFU now (switched already, or big enough)."""
    row = await session.get(SfuRoom, room_id)
    if row is not None and row.janus_url in {i.api_url for i in pool.instances}:
        return True
    return wants_sfu(pool, present)


async def decide(
    session: AsyncSession,
    pool: JanusPool,
    room_id: str,
    present: int,
    ending: recording.VideoJobs | None = None,
    hub: Hub | None = None,
) -> str:
    """The call's mode for ``present`` people; stores the switch, or ends an empty call
    (and, given ``ending`` and ``hub``, the recording it may still have)."""
    if present == 0:
        running = await recording.active(session, room_id)
        if running is not None and ending is not None and hub is not None:
            await recording.finish(session, pool, ending, hub, running, by=None)
        if await session.get(SfuRoom, room_id) is not None:
            await service.close_room(session, pool, room_id)
        return MESH
    if not await on_sfu(session, pool, room_id, present):
        return MESH
    await pool.assignment(session, room_id)  # the switch every instance reads
    return SFU


class CallModes:
    """The hub's ``call_mode`` hook: the fields a room's presence list gets."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        pool: JanusPool,
        video_jobs: recording.VideoJobs,
        hub: Hub,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.pool = pool
        self.video_jobs = video_jobs
        self.hub = hub

    async def __call__(self, room_id: str, participants: list[dict[str, Any]]) -> dict[str, Any]:
        async with unit_of_work(self.sessionmaker) as session:
            mode = await decide(
                session, self.pool, room_id, len(participants), self.video_jobs, self.hub
            )
        if mode == SFU:
            # Janus forwards each picture once: the call may hold its publishers.
            return {"call_mode": SFU, "max_call_size": self.pool.settings.max_publishers}
        return {"call_mode": MESH}
