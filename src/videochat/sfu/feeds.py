"""Whose feed is whose in a room's VideoRoom: videochat says, never the publisher.

Janus's VideoRoom lets anyone admitted to a room (a token on its ``allowed`` list)
join as a publisher with whatever ``id`` and ``display`` they send: neither is bound
to the token. So a feed's ``display`` proves nothing, and a grant's publisher id,
which everyone in the call sees, could be taken by someone else while its owner is
away (a reload). What Janus does bind is the token a handle was attached with: the
admin API's ``handle_info`` shows it, with the handle's VideoRoom room and id.

So each grant is bound to one handle: the browser attaches a VideoRoom handle and
registers it (``POST /rooms/{id}/call/sfu-handle``) before it joins with the grant's
publisher id; videochat checks with ``handle_info`` that the handle was attached with
the grant's token and stores it. A feed is someone's only while the handle holding its
id in the room is their registered handle, with their token: that is what
``GET /rooms/{id}/call/sfu-feeds`` answers, and what clients map feeds to people by.
Every other publisher (an id no grant has, or a grant's id held by another handle) is
kicked, when someone asks for the feeds and by the SFU sweep.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videochat.db.models import SfuGrant, SfuRoom
from videochat.exceptions import Conflict, Forbidden, VideochatError
from videochat.kit.clock import utcnow
from videochat.sfu.instances import JanusPool
from videochat.sfu.janus import VIDEOROOM, JanusAdmin, JanusError
from videochat.sfu.service import SFU_UNAVAILABLE, SfuUnavailable

log = structlog.get_logger(__name__)

NO_GRANT = "you hold no grant to this call: ask for one (POST /rooms/{id}/call/sfu-grant) first"
NOT_YOUR_HANDLE = (
    "that Janus handle is not yours: it must be a VideoRoom handle attached with your "
    "grant's token, joined (if at all) with your grant's publisher id in this call"
)


@dataclass(frozen=True, slots=True)
class Feed:
    feed: int  # the publisher id in the VideoRoom
    user_id: str


def _holds(info: dict[str, Any] | None, grant: SfuGrant, janus_room: int) -> bool:
    """Whether the handle is the grant's publisher in the room, with the grant's token."""
    if info is None or info.get("token") != grant.token or info.get("plugin") != VIDEOROOM:
        return False
    plugin: dict[str, Any] = info.get("plugin_specific") or {}
    return (
        plugin.get("type") == "publisher"
        and plugin.get("room") == janus_room
        and plugin.get("id") == grant.publisher_id
    )


async def register(
    session: AsyncSession,
    pool: JanusPool,
    room_id: str,
    user_id: str,
    *,
    janus_session: int,
    janus_handle: int,
) -> SfuGrant:
    """Bind the caller's grant to the handle they will publish from (checked at Janus)."""
    grant = await session.get(SfuGrant, (room_id, user_id))
    if grant is None or grant.expires_at <= utcnow():
        raise Conflict(NO_GRANT)
    row = await session.get(SfuRoom, room_id)
    try:
        admin = pool.instance(grant.janus_url).admin
        info = await admin.handle_info(janus_session, janus_handle)
    except JanusError as exc:
        log.warning("sfu.handle_info_failed", room_id=room_id, error=str(exc))
        raise SfuUnavailable(SFU_UNAVAILABLE) from exc
    if info is None or info.get("token") != grant.token or info.get("plugin") != VIDEOROOM:
        raise Forbidden(NOT_YOUR_HANDLE)
    joined: dict[str, Any] = info.get("plugin_specific") or {}
    if "type" in joined and (row is None or not _holds(info, grant, row.janus_room)):
        raise Forbidden(NOT_YOUR_HANDLE)  # already in as something else
    grant.janus_session, grant.janus_handle = janus_session, janus_handle
    return grant


async def _check(
    admin: JanusAdmin, grants: dict[int, SfuGrant], janus_room: int, participant: int
) -> bool:
    grant = grants.get(participant)
    if grant is None or grant.janus_session is None or grant.janus_handle is None:
        return False
    info = await admin.handle_info(grant.janus_session, grant.janus_handle)
    return _holds(info, grant, janus_room)


async def verify(session: AsyncSession, pool: JanusPool, room_id: str) -> list[Feed]:
    """The room's feeds that are their grant holder's; every other publisher is kicked."""
    row = await session.get(SfuRoom, room_id)
    if row is None:
        return []
    grants = {
        grant.publisher_id: grant
        for grant in await session.scalars(select(SfuGrant).where(SfuGrant.room_id == room_id))
    }
    try:
        videoroom = pool.videoroom(row)
        participants = [int(p["id"]) for p in await videoroom.participants() if "id" in p]
        checks = [_check(videoroom.admin, grants, row.janus_room, p) for p in participants]
        verdicts = await asyncio.gather(*checks)
        feeds, impostors = [], []
        for participant, genuine in zip(participants, verdicts, strict=True):
            if genuine:
                feeds.append(Feed(participant, grants[participant].user_id))
            else:
                impostors.append(participant)
        for participant in impostors:
            log.warning("sfu.impostor_kicked", room_id=room_id, feed=participant)
            await videoroom.kick(participant)
    except (JanusError, VideochatError) as exc:
        log.warning("sfu.feeds_check_failed", room_id=room_id, error=str(exc))
        raise SfuUnavailable(SFU_UNAVAILABLE) from exc
    return feeds


async def sweep(sessionmaker: async_sessionmaker[AsyncSession], pool: JanusPool) -> int:
    """Check every room's VideoRoom (kicking other publishers); how many rooms failed."""
    async with sessionmaker() as session:
        room_ids = list(await session.scalars(select(SfuRoom.room_id)))
    failed = 0
    for room_id in room_ids:
        async with sessionmaker() as session:
            try:
                await verify(session, pool, room_id)
            except SfuUnavailable:
                failed += 1
    return failed
