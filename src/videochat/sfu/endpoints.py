"""``POST /rooms/{room_id}/call/sfu-grant``: admission to the room's call on the SFU."""

from __future__ import annotations

from fastapi import APIRouter, Response

from videochat.accounts.auth import CurrentUser
from videochat.context import AppContext, Context, Session
from videochat.db.models import CallRecording
from videochat.exceptions import Conflict, NotFound
from videochat.rooms.auth import VisibleRoom
from videochat.sfu import feeds, mode, recording, service
from videochat.sfu.manager import SfuManager
from videochat.sfu.schemas import (
    RecordingOut,
    SfuFeedOut,
    SfuFeedsOut,
    SfuGrantOut,
    SfuHandleIn,
)

router = APIRouter(tags=["calls"])
NO_SFU = "this server has no SFU (VIDEOCHAT_SFU__JANUS_URL is unset): calls are peer-to-peer"
ON_MESH = "this room's call is peer-to-peer (mesh) while it has few people; no grant is needed"


@router.post("/rooms/{room_id}/call/sfu-grant", response_model=SfuGrantOut)
async def sfu_grant(
    user: CurrentUser, room: VisibleRoom, session: Session, context: Context
) -> SfuGrantOut:
    """A short-lived Janus token admitting the caller to the room's VideoRoom.

    Asking again before it expires renews it. Members only (a public room's visitor
    joins it by opening its socket), never banned people; a kick or ban withdraws it
    at once. Refused (409)
    while the room's call is a mesh (the presence list's ``call_mode``).
    """
    sfu = _sfu(context)
    service.require_member(room, user.id)  # a ban says so before the mode
    present = len(await context.hub.participants(room.id))
    if not await mode.on_sfu(session, sfu.pool, room.id, present):
        raise Conflict(ON_MESH)
    grant = await service.issue_grant(session, sfu.pool, room, user.id)
    return SfuGrantOut.model_validate(grant, from_attributes=True)


@router.post("/rooms/{room_id}/call/sfu-handle", status_code=204, response_class=Response)
async def sfu_handle(
    body: SfuHandleIn, user: CurrentUser, room: VisibleRoom, session: Session, context: Context
) -> Response:
    """Bind the caller's grant to the Janus handle they publish from (before joining).

    403 unless Janus says the handle was attached with the caller's grant's token (and,
    if it has joined already, holds the grant's publisher id in this call's VideoRoom).
    """
    sfu = _sfu(context)
    service.require_member(room, user.id)
    await feeds.register(
        session,
        sfu.pool,
        room.id,
        user.id,
        janus_session=body.session_id,
        janus_handle=body.handle_id,
    )
    return Response(status_code=204)


@router.get("/rooms/{room_id}/call/sfu-feeds", response_model=SfuFeedsOut)
async def sfu_feeds(
    user: CurrentUser, room: VisibleRoom, session: Session, context: Context
) -> SfuFeedsOut:
    """Whose each feed in the call's VideoRoom is; other publishers are kicked (members)."""
    sfu = _sfu(context)
    service.require_member(room, user.id)
    found = await feeds.verify(session, sfu.pool, room.id)
    return SfuFeedsOut(feeds=[SfuFeedOut(feed=f.feed, user_id=f.user_id) for f in found])


def _sfu(context: AppContext) -> SfuManager:
    """The SFU's manager; 404 (with why) on a server without one."""
    if context.sfu is None:
        raise NotFound(NO_SFU)
    return context.sfu


def _recording_out(row: CallRecording) -> RecordingOut:
    return RecordingOut(
        room_id=row.room_id,
        active=row.stopped_at is None,
        started_by=row.started_by,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
        video_id=row.video_id,
    )


@router.post("/rooms/{room_id}/call/recording", response_model=RecordingOut)
async def start_recording(
    user: CurrentUser, room: VisibleRoom, session: Session, context: Context
) -> RecordingOut:
    """Record the room's call on the SFU into its library (owner or moderator).

    Everyone in the room hears a ``recording`` frame; 409 when it is already
    recording, this server does not record calls, or the caller's storage quota (the
    video will be theirs) is used up.
    """
    sfu = _sfu(context)
    started = await recording.start(
        session,
        sfu.pool,
        context.hub,
        room,
        user.id,
        storage_left=sfu.storage_left,
    )
    return _recording_out(started)


@router.delete("/rooms/{room_id}/call/recording", response_model=RecordingOut)
async def stop_recording(
    user: CurrentUser, room: VisibleRoom, session: Session, context: Context
) -> RecordingOut:
    """Stop recording (owner or moderator): the answer names the library video it becomes."""
    sfu = _sfu(context)
    stopped, _ = await recording.stop(
        session, sfu.pool, context.video_jobs, context.hub, room, user.id
    )
    return _recording_out(stopped)
