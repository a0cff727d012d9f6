"""Live stream rules: who may create, publish, stop and watch; public shapes; frames."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.config import Settings
from videochat.db.models import (
    LiveStream,
    LiveStreamStatus,
    Room,
    User,
    Video,
    VideoStatus,
)
from videochat.exceptions import Conflict, Forbidden, Unauthorized, VideochatError
from videochat.kit.clock import utcnow
from videochat.kit.ids import new_secret
from videochat.kit.urls import frame_url
from videochat.live.schemas import LiveStreamOut
from videochat.media import service as media_service
from videochat.realtime.hub import Hub
from videochat.rooms import policy

log = structlog.get_logger(__name__)

STREAM_NOT_FOUND = "Live stream not found"
# The live rendition's folder inside the stream's media folder (the archive's master
# playlist points at it once the stream has ended).
RENDITION = "stream"
PLAYLIST = "index.m3u8"


class Gone(VideochatError):
    status_code = 410


async def create(
    session: AsyncSession, *, room: Room, owner_id: str | None, title: str
) -> LiveStream:
    """A ready stream with a fresh key (who may: ``rooms.policy``, ``Act.GO_LIVE``)."""
    stream = LiveStream(
        room_id=room.id,
        owner_id=owner_id,
        title=title,
        stream_key=new_secret(24),
        playback_id=new_secret(12),
        status=LiveStreamStatus.READY,
    )
    session.add(stream)
    await session.flush()
    return stream


def whip_url(origin: str, stream: LiveStream) -> str:
    """Where a publisher POSTs its SDP offer (absolute: OBS and scripts use it as given)."""
    return f"{origin}/whip/{stream.id}"


def session_url(origin: str, stream: LiveStream, session_id: str) -> str:
    """The WHIP session (``Location``) a publisher DELETEs to stop."""
    return f"{whip_url(origin, stream)}/sessions/{session_id}"


def pull_url(settings: Settings, stream: LiveStream, room: Room, origin: str) -> str:
    """The HLS playlist viewers play; private rooms' URLs carry a playback token."""
    url = f"{origin}/live/{stream.playback_id}/{PLAYLIST}"
    if room.is_private:
        # Scoped to the stream id, which is also its recording's video id: the same
        # token plays the archive.
        url += f"?token={media_service.playback_token(settings, stream.id)}"
    return url


def to_out(
    settings: Settings, stream: LiveStream, room: Room, *, viewer_id: str | None, origin: str
) -> LiveStreamOut:
    """The public shape of a stream, its URLs starting with ``origin``; the key only for
    its owner."""
    is_owner = stream.owner_id is not None and stream.owner_id == viewer_id
    return LiveStreamOut(
        id=stream.id,
        room_id=stream.room_id,
        owner_id=stream.owner_id,
        title=stream.title,
        status=stream.status.value,
        stream_key=stream.stream_key if is_owner else None,
        playback_id=stream.playback_id,
        rtmp_url=settings.live.rtmp_url,
        pull_url=pull_url(settings, stream, room, origin),
        whip_url=whip_url(origin, stream),
        created_at=stream.created_at,
        started_at=stream.started_at,
        ended_at=stream.ended_at,
        ended_reason=stream.ended_reason,
        video_id=stream.video_id,
    )


def check_key(stream: LiveStream, key: str | None) -> None:
    """401 unless ``key`` is the stream's key (compared in constant time)."""
    if key is None or not secrets.compare_digest(key.encode(), stream.stream_key.encode()):
        raise Unauthorized("Wrong or missing stream key")


def check_publishable(stream: LiveStream) -> None:
    """410 for an ended stream (never restarted), 409 while someone publishes."""
    if stream.status is LiveStreamStatus.ENDED:
        raise Gone("This live stream has ended; create a new one")
    if stream.status is LiveStreamStatus.LIVE:
        raise Conflict("Someone is already publishing to this live stream")


def check_may_stop(stream: LiveStream, room: Room, user: User | None) -> None:
    """The stream's owner and the room's owner and moderators may stop it."""
    if user is None:
        return  # open auth mode: anyone, as in the prototype
    if stream.owner_id == user.id:
        return
    if policy.manages(room, user.id):
        return
    raise Forbidden("Only the stream's owner or a room moderator can stop it")


def may_watch(room: Room, viewer_id: str | None) -> bool:
    """Watching follows the room's visibility."""
    return policy.can_see(room, viewer_id)


def frame(kind: str, stream: LiveStream, settings: Settings, **extra: Any) -> dict[str, Any]:
    """A ``live_started`` / ``live_ended`` frame (URLs without tokens: members fetch them;
    absolute when a public URL is configured, ``kit.urls.frame_url``)."""
    return {
        "type": kind,
        "stream_id": stream.id,
        "room_id": stream.room_id,
        "title": stream.title,
        "owner_id": stream.owner_id,
        "playback_id": stream.playback_id,
        "pull_url": frame_url(settings.public_url, f"/live/{stream.playback_id}/{PLAYLIST}"),
        **extra,
    }


async def announce(hub: Hub, room_id: str, payload: dict[str, Any]) -> None:
    """Tell the room; a broker hiccup must not break the ingest."""
    try:
        await hub.publish(room_id, payload)
    except Exception:
        log.exception("live.publish_failed", room_id=room_id, type=payload.get("type"))


def recording_video(
    stream: LiveStream,
    *,
    duration_seconds: float,
    width: int,
    height: int,
    size_bytes: int,
) -> Video:
    """The library entry for a finished broadcast (same id, so its files are already in place)."""
    now = utcnow()
    return Video(
        id=stream.id,
        room_id=stream.room_id,
        uploader_id=stream.owner_id,
        title=stream.title,
        description=f"Live broadcast of {now:%Y-%m-%d %H:%M} UTC",
        status=VideoStatus.READY,
        provider="local",
        # Never a usable upload slot: already used (ready) and already expired.
        upload_id=new_secret(24),
        upload_expires_at=now - timedelta(seconds=1),
        size_bytes=size_bytes,
        duration_seconds=duration_seconds,
        width=width,
        height=height,
    )
