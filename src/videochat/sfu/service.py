"""Grants: who may enter a room's VideoRoom, and what moderation does there.

A grant is a Janus token added to the room's Janus instance (for the VideoRoom plugin
only) and to the VideoRoom's ``allowed`` list, recorded in ``sfu_grants`` with its
expiry and the publisher id the person joins with. The browser talks to Janus with
it; without one, Janus refuses every request. Asking again before the expiry renews
the same token. Kicks and bans withdraw it (the VideoRoom drops the participant, and
the token stops working, keepalives included, so the person's Janus session ends);
a mute moderates the streams the person publishes.

Janus is told after the database: a grant's token is added before the request
commits (the browser needs it in the answer); one whose commit then failed has no
row, and ``sweep`` removes such tokens. Withdrawals run once the action is committed.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videochat.config import SfuSettings
from videochat.db.models import CallRecording, SfuGrant, SfuRoom
from videochat.db.unit_of_work import after_commit, unit_of_work
from videochat.exceptions import Conflict, Forbidden, VideochatError
from videochat.kit.clock import utcnow
from videochat.rooms import policy
from videochat.rooms.repository import RoomView
from videochat.sfu.instances import JanusPool
from videochat.sfu.janus import JanusError
from videochat.sfu.videoroom import ID_BITS, VideoRoom

log = structlog.get_logger(__name__)

# Tokens videochat made: "vc1-<unix time issued>-<random>" (the sweep knows them by it).
TOKEN_PREFIX = "vc1-"
# A token without a grant row is an orphan once the request that added it is surely over.
ORPHAN_AFTER_SECONDS = 60
# A VideoRoom without grants is destroyed once it is this old (a first grant is on its way).
EMPTY_ROOM_GRACE_SECONDS = 60
SFU_UNAVAILABLE = "the call's SFU (Janus) is unavailable; try again"


class SfuUnavailable(VideochatError):
    status_code = 503


@dataclass(slots=True, frozen=True)
class Grant:
    janus_url: str  # as the browser reaches it
    room: int
    token: str
    publisher_id: int
    expires_at: datetime
    ttl_seconds: int


def new_token() -> str:
    return f"{TOKEN_PREFIX}{int(time.time())}-{secrets.token_urlsafe(24)}"


def token_issued_at(token: str) -> int | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    issued, _, _ = token[len(TOKEN_PREFIX) :].partition("-")
    return int(issued) if issued.isdigit() else None


def require_member(room: RoomView, user_id: str | None) -> None:
    """The call's people are the room's members (not banned; muted ones too: they watch)."""
    policy.require_may(room, user_id, policy.Act.WATCH)
    if user_id is not None and room.member(user_id) is None:
        raise Forbidden(policy.NOT_A_MEMBER)


async def issue_grant(
    session: AsyncSession, pool: JanusPool, room: RoomView, user_id: str
) -> Grant:
    """Admit a member to the room's VideoRoom for ``grant_ttl_seconds`` (``require_member``)."""
    require_member(room, user_id)
    settings = pool.settings
    try:
        return await _issue(session, pool, settings, room, user_id)
    except JanusError as exc:
        log.warning("sfu.grant_failed", room_id=room.id, error=str(exc))
        raise SfuUnavailable(SFU_UNAVAILABLE) from exc


async def _issue(
    session: AsyncSession, pool: JanusPool, settings: SfuSettings, room: RoomView, user_id: str
) -> Grant:
    row = await pool.assignment(session, room.id)
    instance = pool.instance(row.janus_url)
    videoroom = await prepare_videoroom(session, pool, room, row)
    expires_at = utcnow() + timedelta(seconds=settings.grant_ttl_seconds)
    grant = await session.get(SfuGrant, (room.id, user_id), populate_existing=True)
    if grant is not None and grant.janus_url == row.janus_url and grant.expires_at > utcnow():
        grant.expires_at = expires_at  # renewed: the same token and publisher id
    else:
        if grant is not None:
            await session.delete(grant)
            await session.flush()
            after_commit(session, partial(_withdraw_token, pool, grant.janus_url, grant.token))
        grant = SfuGrant(
            room_id=room.id,
            user_id=user_id,
            token=new_token(),
            janus_url=row.janus_url,
            publisher_id=secrets.randbits(ID_BITS) or 1,
            expires_at=expires_at,
        )
        session.add(grant)
        try:
            await session.flush()
        except IntegrityError as exc:  # the same person asked twice at once
            raise Conflict("a grant for this call is being issued; ask again") from exc
        await instance.admin.add_token(grant.token)
    # Again on a renewal: the VideoRoom may have been re-created (a Janus restart).
    await videoroom.allow(grant.token)
    return Grant(
        janus_url=instance.public_url,
        room=row.janus_room,
        token=grant.token,
        publisher_id=grant.publisher_id,
        expires_at=expires_at,
        ttl_seconds=settings.grant_ttl_seconds,
    )


def janus_folder(settings: SfuSettings, recording: CallRecording) -> str:
    """A recording's folder as Janus writes it."""
    return f"{settings.janus_recording_root}/{recording.folder}"


async def prepare_videoroom(
    session: AsyncSession, pool: JanusPool, room: RoomView, row: SfuRoom
) -> VideoRoom:
    """The room's VideoRoom, created on its Janus unless it exists.

    Made anew while a recording of the call runs (say, after a Janus restart), it
    records into the recording's folder from the start.
    """
    settings = pool.settings
    recording = await session.scalar(
        select(CallRecording).where(
            CallRecording.room_id == room.id,
            CallRecording.stopped_at.is_(None),
            CallRecording.janus_url == row.janus_url,
        )
    )
    videoroom = pool.videoroom(row)
    admin_key = settings.room_admin_key.get_secret_value() if settings.room_admin_key else ""
    await videoroom.ensure(
        admin_key=admin_key,
        description=room.name,
        publishers=settings.max_publishers,
        record_dir=janus_folder(settings, recording) if recording is not None else None,
    )
    return videoroom


async def withdraw(session: AsyncSession, pool: JanusPool, room_id: str, user_id: str) -> None:
    """Take the user's grant back; once committed, Janus drops them and their token."""
    grant = await session.get(SfuGrant, (room_id, user_id))
    if grant is None:
        return
    row = await session.get(SfuRoom, room_id)
    await session.delete(grant)
    after_commit(
        session, partial(_drop, pool, row, grant.janus_url, grant.token, grant.publisher_id)
    )


async def mute(session: AsyncSession, pool: JanusPool, room_id: str, user_id: str) -> None:
    """Once the mute is committed, Janus stops forwarding what the user publishes."""
    grant = await session.get(SfuGrant, (room_id, user_id))
    row = await session.get(SfuRoom, room_id)
    if grant is None or row is None:
        return

    async def moderate() -> None:
        try:
            await pool.videoroom(row).mute(grant.publisher_id)
        except (JanusError, VideochatError) as exc:
            log.warning("sfu.mute_failed", room_id=room_id, user_id=user_id, error=str(exc))

    after_commit(session, moderate)


async def _drop(
    pool: JanusPool, row: SfuRoom | None, token_url: str, token: str, publisher_id: int
) -> None:
    """Out of the VideoRoom (and off its ACL), then the token out of Janus."""
    if row is not None:
        try:
            videoroom = pool.videoroom(row)
            await videoroom.kick(publisher_id)
            await videoroom.disallow(token)
        except (JanusError, VideochatError) as exc:
            log.warning("sfu.kick_failed", janus_room=row.janus_room, error=str(exc))
    await _withdraw_token(pool, token_url, token)


async def _withdraw_token(pool: JanusPool, janus_url: str, token: str) -> None:
    try:
        await pool.instance(janus_url).admin.remove_token(token)
    except (JanusError, VideochatError) as exc:
        # Left for the sweep: a token without a grant row is removed there.
        log.warning("sfu.token_removal_failed", janus_url=janus_url, error=str(exc))


async def close_room(session: AsyncSession, pool: JanusPool, room_id: str) -> None:
    """End the room's SFU call: every grant withdrawn, the VideoRoom destroyed (after commit)."""
    row = await session.get(SfuRoom, room_id)
    grants = list(await session.scalars(select(SfuGrant).where(SfuGrant.room_id == room_id)))
    for grant in grants:
        await session.delete(grant)
        after_commit(session, partial(_withdraw_token, pool, grant.janus_url, grant.token))
    if row is not None:
        await session.delete(row)
        after_commit(session, partial(_destroy, pool, row))


async def _destroy(pool: JanusPool, row: SfuRoom) -> None:
    try:
        await pool.videoroom(row).destroy()
    except (JanusError, VideochatError) as exc:
        log.warning("sfu.destroy_failed", janus_room=row.janus_room, error=str(exc))


async def sweep(sessionmaker: async_sessionmaker[AsyncSession], pool: JanusPool) -> dict[str, int]:
    """Withdraw expired grants, remove orphan tokens, destroy VideoRooms nobody holds a grant to."""
    now = utcnow()
    async with unit_of_work(sessionmaker) as session:
        expired = list(await session.scalars(select(SfuGrant).where(SfuGrant.expires_at <= now)))
        for grant in expired:
            await withdraw(session, pool, grant.room_id, grant.user_id)
    orphans = await _remove_orphan_tokens(sessionmaker, pool)
    grace = now - timedelta(seconds=EMPTY_ROOM_GRACE_SECONDS)
    async with unit_of_work(sessionmaker) as session:
        empty = list(
            await session.scalars(
                select(SfuRoom).where(
                    SfuRoom.created_at <= grace,
                    ~exists().where(SfuGrant.room_id == SfuRoom.room_id),
                )
            )
        )
        for row in empty:
            await session.execute(
                delete(SfuRoom).where(
                    SfuRoom.room_id == row.room_id,
                    ~exists().where(SfuGrant.room_id == row.room_id),
                )
            )
            after_commit(session, partial(_destroy, pool, row))
    return {"expired": len(expired), "orphans": orphans, "destroyed": len(empty)}


async def _remove_orphan_tokens(
    sessionmaker: async_sessionmaker[AsyncSession], pool: JanusPool
) -> int:
    removed = 0
    cutoff = time.time() - ORPHAN_AFTER_SECONDS
    for instance in pool.instances:
        try:
            tokens = await instance.admin.tokens()
        except JanusError as exc:
            log.warning("sfu.list_tokens_failed", janus_url=instance.api_url, error=str(exc))
            continue
        old = [t for t in tokens if (token_issued_at(t) or cutoff + 1) <= cutoff]
        if not old:
            continue
        async with sessionmaker() as session:
            known = set(
                await session.scalars(select(SfuGrant.token).where(SfuGrant.token.in_(old)))
            )
        for token in old:
            if token not in known:
                await _withdraw_token(pool, instance.api_url, token)
                removed += 1
    return removed
