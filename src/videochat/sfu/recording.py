"""Recording a room's call on the SFU into the room's library.

Starting turns on Janus's recording in the room's VideoRoom, into a folder of its own
under ``VIDEOCHAT_SFU__RECORDING_DIR``: Janus writes one ``.mjr`` file per stream of
each publisher, for those in the call and those who join while it records. Stopping
turns it off (Janus closes the files) and makes a library video, owned by whoever
started the recording and counted in their storage quota (its composed size, once
ready; starting is refused while their quota is used up), whose job
(``media.recordings``) turns the files into one video and removes them. One
recording runs per room at a time; many rooms may record at once. A recording
longer than ``recording_max_seconds`` is stopped by the sweep.

As with grants, Janus is told before the request commits (its answer decides the
request's); the room hears a ``recording`` frame once it is committed, and people
who connect later find it in their ``welcome``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videochat.config import SfuSettings
from videochat.db.models import CallRecording, SfuRoom, Video, VideoStatus
from videochat.db.unit_of_work import after_commit, unit_of_work
from videochat.exceptions import Conflict, VideochatError
from videochat.kit.clock import utcnow
from videochat.kit.ids import new_id, new_secret
from videochat.realtime.frames import recording_frame
from videochat.realtime.hub import Hub
from videochat.rooms import policy
from videochat.rooms.repository import RoomView
from videochat.sfu.instances import JanusPool
from videochat.sfu.janus import JanusError
from videochat.sfu.service import (
    SFU_UNAVAILABLE,
    SfuUnavailable,
    janus_folder,
    prepare_videoroom,
)
from videochat.sfu.videoroom import VideoRoom

log = structlog.get_logger(__name__)

NOT_A_MANAGER = "Only the room's owner and moderators can start or stop recording"
RECORDING_OFF = (
    "recording is off on this server (VIDEOCHAT_SFU__RECORDING_DIR is unset): "
    "calls cannot be recorded"
)
ALREADY_RECORDING = "this call is already being recorded"
NOT_RECORDING = "this call is not being recorded"


QUOTA_USED_UP = (
    "Your storage quota is used up, and a recording is stored as your video: delete "
    "videos of yours before recording"
)
# What is left of a user's storage quota (``media.service.storage_left``, wired by
# ``runtime``: the media layer sits above this one).
StorageLeft = Callable[[AsyncSession, str], Awaitable[int]]


class VideoJobs(Protocol):
    """Where the stopped recording's video goes (``AppContext.video_jobs``)."""

    async def enqueue(self, video_id: str) -> None: ...


async def active(session: AsyncSession, room_id: str) -> CallRecording | None:
    """The room's running recording, if any."""
    found: CallRecording | None = await session.scalar(
        select(CallRecording).where(
            CallRecording.room_id == room_id, CallRecording.stopped_at.is_(None)
        )
    )
    return found


def _require_may_record(settings: SfuSettings, room: RoomView, user_id: str) -> None:
    policy.require_manager(room, user_id, detail=NOT_A_MANAGER)
    if not settings.recording_enabled:
        raise Conflict(RECORDING_OFF)


async def start(
    session: AsyncSession,
    pool: JanusPool,
    hub: Hub,
    room: RoomView,
    user_id: str,
    *,
    storage_left: StorageLeft,
) -> CallRecording:
    """Record the room's call from now on (owner or moderator; one recording at a time;
    the video it becomes is the starter's, so their storage quota must have room left)."""
    settings = pool.settings
    _require_may_record(settings, room, user_id)
    if await active(session, room.id) is not None:
        raise Conflict(ALREADY_RECORDING)
    if await storage_left(session, user_id) <= 0:
        raise Conflict(QUOTA_USED_UP)
    row = await pool.assignment(session, room.id)
    recording_id = new_id()
    recording = CallRecording(
        id=recording_id,
        room_id=room.id,
        started_by=user_id,
        janus_url=row.janus_url,
        janus_room=row.janus_room,
        folder=recording_id,
        started_at=utcnow(),
    )
    session.add(recording)
    try:
        await session.flush()
    except IntegrityError as exc:  # another request started one meanwhile
        raise Conflict(ALREADY_RECORDING) from exc
    try:
        videoroom = await prepare_videoroom(session, pool, room, row)
        await videoroom.start_recording(janus_folder(settings, recording))
    except JanusError as exc:
        log.warning("sfu.recording_start_failed", room_id=room.id, error=str(exc))
        raise SfuUnavailable(SFU_UNAVAILABLE) from exc
    frame = recording_frame(
        room_id=room.id, active=True, by=user_id, started_at=recording.started_at
    )
    after_commit(session, partial(hub.publish, room.id, frame))
    log.info("sfu.recording_started", room_id=room.id, recording_id=recording.id)
    return recording


async def stop(
    session: AsyncSession,
    pool: JanusPool,
    jobs: VideoJobs,
    hub: Hub,
    room: RoomView,
    user_id: str,
) -> tuple[CallRecording, Video]:
    """Stop the room's recording (owner or moderator); its video is queued once committed."""
    _require_may_record(pool.settings, room, user_id)
    recording = await active(session, room.id)
    if recording is None:
        raise Conflict(NOT_RECORDING)
    video = await finish(session, pool, jobs, hub, recording, by=user_id)
    return recording, video


async def finish(
    session: AsyncSession,
    pool: JanusPool,
    jobs: VideoJobs,
    hub: Hub,
    recording: CallRecording,
    *,
    by: str | None,
) -> Video:
    """Janus closes the files; the recording is stopped and its library video queued."""
    videoroom = await recording_videoroom(session, pool, recording)
    if videoroom is not None:
        try:
            await videoroom.stop_recording()
        except JanusError as exc:
            log.warning("sfu.recording_stop_failed", recording_id=recording.id, error=str(exc))
            raise SfuUnavailable(SFU_UNAVAILABLE) from exc
    now = utcnow()
    recording.stopped_at = now
    video = Video(
        room_id=recording.room_id,
        uploader_id=recording.started_by,
        title=f"Call recording {recording.started_at:%Y-%m-%d %H:%M} UTC",
        description="",
        # The bytes are "uploaded" (in the recording folder): the job composes them.
        status=VideoStatus.UPLOADED,
        upload_id=new_secret(24),
        upload_expires_at=now,  # no upload slot: nothing may be sent to it
        provider="local",
    )
    session.add(video)
    await session.flush()
    recording.video_id = video.id
    frame = recording_frame(
        room_id=recording.room_id,
        active=False,
        by=by,
        started_at=recording.started_at,
        stopped_at=now,
        video_id=video.id,
    )
    after_commit(session, partial(jobs.enqueue, video.id))
    after_commit(session, partial(hub.publish, recording.room_id, frame))
    log.info("sfu.recording_stopped", room_id=recording.room_id, video_id=video.id)
    return video


async def recording_videoroom(
    session: AsyncSession, pool: JanusPool, recording: CallRecording
) -> VideoRoom | None:
    """The VideoRoom that records; None when it is gone (its row goes when it is
    destroyed, and Janus closed its recordings then) or its Janus is unconfigured."""
    row = await session.get(SfuRoom, recording.room_id)
    where = (recording.janus_url, recording.janus_room)
    if row is None or (row.janus_url, row.janus_room) != where:
        return None
    try:
        return pool.videoroom(row)
    except VideochatError:
        log.warning("sfu.recording_instance_gone", recording_id=recording.id)
        return None


async def stop_overdue(
    sessionmaker: async_sessionmaker[AsyncSession],
    pool: JanusPool,
    jobs: VideoJobs,
    hub: Hub,
) -> int:
    """Stop every recording that ran past ``recording_max_seconds``; how many."""
    cutoff = utcnow() - timedelta(seconds=pool.settings.recording_max_seconds)
    async with sessionmaker() as session:
        overdue = list(
            await session.scalars(
                select(CallRecording.id).where(
                    CallRecording.stopped_at.is_(None), CallRecording.started_at <= cutoff
                )
            )
        )
    stopped = 0
    for recording_id in overdue:
        try:
            async with unit_of_work(sessionmaker) as session:
                recording = await session.get(CallRecording, recording_id)
                if recording is None or recording.stopped_at is not None:
                    continue
                await finish(session, pool, jobs, hub, recording, by=None)
            stopped += 1
        except VideochatError as exc:  # Janus away: the next sweep tries again
            log.warning(
                "sfu.recording_overdue_stop_failed", recording_id=recording_id, error=str(exc)
            )
    return stopped
