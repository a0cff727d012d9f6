"""Video library rules: upload slots, receiving bytes, status changes, public shapes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import jwt
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect

from videochat.config import AuthMode, Settings
from videochat.db.models import Room, User, Video, VideoStatus
from videochat.db.unit_of_work import after_commit, commit
from videochat.exceptions import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    VideochatError,
)
from videochat.kit.clock import utcnow
from videochat.kit.ids import new_secret
from videochat.kit.urls import frame_url
from videochat.media import bunny, repository
from videochat.media.bunny import playback_urls as bunny_playback_urls
from videochat.media.probe import SNIFF_BYTES, _describe_unopenable, sniff_is_media_container
from videochat.media.schemas import VideoOut
from videochat.media.storage import MediaStorage
from videochat.realtime.hub import Hub
from videochat.rooms import repository as rooms_repository
from videochat.rooms.policy import Act, can_see, may_manage_video, require_may

log = structlog.get_logger(__name__)

VIDEO_NOT_FOUND = "Video not found"
VIDEO_NOT_YOURS = "Only the video's uploader, the room's owner or a moderator can change it"
# Bytes handed to a worker thread per write: big enough to amortise the hop, small
# enough that an upload never holds more than this in memory.
WRITE_CHUNK = 1024 * 1024
_PLAYBACK_TOKEN_KIND = "playback"


class Gone(VideochatError):
    status_code = 410


class UnsupportedMediaType(VideochatError):
    status_code = 415


def upload_url(origin: str, video: Video) -> str:
    """The compatible PUT target of a video's slot (absolute: ``kit.urls.origin``)."""
    return f"{origin}/upload-proxy/{video.upload_id}"


def tus_url(origin: str, video: Video) -> str:
    """The tus resource of a video's slot (absolute: ``kit.urls.origin``)."""
    return f"{origin}/uploads/tus/{video.upload_id}"


def declared_detail(video: Video) -> str:
    return f"More bytes than the declared length of {video.upload_length}"


def check_declared_size(video: Video, size: int) -> None:
    """400 when a whole upload ends short of the size its slot declared."""
    if video.upload_length is not None and size != video.upload_length:
        raise VideochatError(
            f"The slot was declared as {video.upload_length} bytes but {size} arrived",
            status_code=400,
        )


def too_large_detail(settings: Settings) -> str:
    return f"The upload is larger than the limit of {settings.media.max_upload_bytes} bytes"


def check_head(head: bytes) -> None:
    """Refuse at once what is not a media container, with a reason a person understands."""
    if not sniff_is_media_container(head):
        reason = _describe_unopenable(head) if head else "the file is empty"
        raise UnsupportedMediaType(f"Not a video: {reason}")


@dataclass(frozen=True)
class UploadLimit:
    """How many bytes an upload may take, and what to say when it takes more."""

    bytes: int
    detail: str


def _quota_detail(settings: Settings, left: int) -> str:
    quota = settings.media.max_stored_bytes_per_user
    return (
        f"The upload does not fit in your storage quota of {quota} bytes: {max(left, 0)} are "
        "left (delete videos or wait for unfinished uploads to expire)"
    )


async def storage_left(session: AsyncSession, settings: Settings, user_id: str) -> int:
    """What is left of the user's storage quota (negative: over it); call recordings
    count as the videos of whoever started them."""
    used = await repository.stored_bytes(session, user_id, now=utcnow())
    return settings.media.max_stored_bytes_per_user - used


async def check_quota(
    session: AsyncSession,
    settings: Settings,
    uploader_id: str | None,
    *,
    declared: int | None = None,
    lock: bool = True,
) -> None:
    """Refuse a new slot beyond the user's caps: 409 for unfinished uploads, 413 for bytes.

    ``lock`` holds the user's row until the request commits, so concurrent requests
    are counted one after the other; a check before a slow remote call goes without.
    """
    if uploader_id is None:
        return  # open mode without a name: no one to count against
    media, now = settings.media, utcnow()
    if lock:
        await repository.lock_uploader(session, uploader_id)
    open_slots = await repository.count_open_slots(session, uploader_id, now=now)
    if open_slots >= media.max_pending_uploads_per_user:
        raise Conflict(
            f"You have {open_slots} unfinished uploads, the most allowed: finish or cancel "
            "one first (an unused slot expires by itself)"
        )
    left = await storage_left(session, settings, uploader_id)
    if left <= 0 or (declared is not None and declared > left):
        raise PayloadTooLarge(_quota_detail(settings, left))


async def upload_limit(session: AsyncSession, settings: Settings, video: Video) -> UploadLimit:
    """The most a slot's upload may take: the size limit, or what is left of the quota."""
    limit = UploadLimit(settings.media.max_upload_bytes, too_large_detail(settings))
    if video.uploader_id is None:
        return limit
    used = await repository.stored_bytes(
        session, video.uploader_id, now=utcnow(), excluding=video.id
    )
    left = settings.media.max_stored_bytes_per_user - used
    return UploadLimit(max(left, 0), _quota_detail(settings, left)) if left < limit.bytes else limit


async def create_slot(
    session: AsyncSession,
    settings: Settings,
    *,
    room: Room,
    uploader_id: str | None,
    title: str,
    description: str,
    upload_length: int | None = None,
    provider: str = "local",
    external_id: str | None = None,
) -> Video:
    """A pending video with a fresh single-use upload slot (flushed, not committed).

    Within the uploader's caps (``check_quota``), which hold until the caller commits.
    """
    await check_quota(session, settings, uploader_id, declared=upload_length)
    video = Video(
        room_id=room.id,
        uploader_id=uploader_id,
        title=title,
        description=description,
        status=VideoStatus.PENDING,
        upload_id=new_secret(24),
        upload_expires_at=utcnow() + timedelta(seconds=settings.media.upload_slot_ttl_seconds),
        upload_length=upload_length,
        provider=provider,
        external_id=external_id,
    )
    session.add(video)
    await session.flush()
    return video


def check_uploader(settings: Settings, video: Video, user: User | None) -> None:
    """Only the slot's creator may send its bytes (the slot id alone is enough in open mode)."""
    if settings.auth_mode is AuthMode.TOKEN and user is None:
        raise Unauthorized()
    if video.uploader_id is None or (user is None and settings.auth_mode is AuthMode.OPEN):
        return
    if user is None or user.id != video.uploader_id:
        raise Forbidden("Only the user who created this upload slot may upload to it")


def check_slot_open(video: Video) -> None:
    """409 once the slot was used, 410 once it expired."""
    if video.status is not VideoStatus.PENDING:
        raise VideochatError("This upload slot has already been used", status_code=409)
    if video.upload_expires_at <= utcnow():
        raise Gone("This upload slot has expired; create a new one")


async def claim_slot(session: AsyncSession, video_id: str) -> bool:
    """Mark a slot as being written, committed at once; False if a request holds it.

    Committed now, not when the request ends: a second request must see the claim, and
    an upload may take hours, which must not keep a transaction (on SQLite, the
    database's write lock) or a pooled connection for itself.
    """
    claimed = await repository.claim_upload(session, video_id, now=utcnow())
    await commit(session)
    return claimed


async def release_claim(session: AsyncSession, video_id: str) -> None:
    """Free a refused or interrupted upload's claim, committed at once.

    The error answer that follows rolls the request's session back: without this
    commit the claim would outlive the request and the slot stay locked.
    """
    await repository.release_upload(session, video_id)
    await commit(session)


async def receive_to_file(
    chunks: AsyncIterator[bytes],
    path: Path,
    *,
    limit: int,
    too_large: str,
    start: int = 0,
    sniff: Callable[[bytes], None] | None = None,
    keep_on_disconnect: bool = False,
) -> int:
    """Append a request body to path without holding it in memory; return the new size.

    Raises PayloadTooLarge as soon as the size passes limit, and whatever sniff raises
    once the first SNIFF_BYTES bytes (or the whole body, if shorter) are in. Nothing
    is written before the sniff passed. keep_on_disconnect keeps the bytes received
    before a client disconnect (tus), else they are dropped with the request.
    """
    fh = await asyncio.to_thread(open, path, "ab" if start else "wb")
    size = start
    pending = bytearray()
    sniffed = sniff is None
    try:
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(too_large)
                pending += chunk
                if not sniffed and len(pending) >= SNIFF_BYTES:
                    assert sniff is not None
                    sniff(bytes(pending[:SNIFF_BYTES]))
                    sniffed = True
                if sniffed and len(pending) >= WRITE_CHUNK:
                    await asyncio.to_thread(fh.write, pending)
                    pending = bytearray()
        except ClientDisconnect:
            if keep_on_disconnect and sniffed and pending:
                # Resumable uploads keep what arrived: the client resumes from here.
                await asyncio.to_thread(fh.write, pending)
            raise
        if not sniffed:
            assert sniff is not None
            sniff(bytes(pending))
        if pending:
            await asyncio.to_thread(fh.write, pending)
        await asyncio.to_thread(fh.flush)
    finally:
        await asyncio.to_thread(fh.close)
    return size


async def mark_uploaded(
    session: AsyncSession,
    hub: Hub,
    settings: Settings,
    storage: MediaStorage,
    video: Video,
    size: int,
) -> bool:
    """Turn a finished upload into an ``uploaded`` video; the room hears it once committed.

    False when the slot is no longer pending (used, withdrawn by a ban, or the video
    deleted while its bytes arrived): the caller discards the bytes.
    """
    moved = await repository.transition(
        session,
        video.id,
        from_=[VideoStatus.PENDING],
        to=VideoStatus.UPLOADED,
        size_bytes=size,
        upload_claimed_at=None,
    )
    if moved:
        # Within the same transaction: a worker sees "uploaded" only with its source.
        await asyncio.to_thread(
            storage.partial_path(video.id).replace, storage.source_path(video.id)
        )
        await session.refresh(video)
        announce_status(session, hub, video, settings)
    return moved


async def mark_relayed(
    session: AsyncSession, hub: Hub, settings: Settings, video: Video, size: int
) -> bool:
    """Record that a provider (Bunny) received a slot's bytes; False if the slot was used.

    A provider's webhook may already have moved the video on (Bunny can report
    "queued" before its answer to our PUT arrives): that still counts as success.
    """
    moved = await repository.transition(
        session,
        video.id,
        from_=[VideoStatus.PENDING],
        to=VideoStatus.UPLOADED,
        size_bytes=size,
        upload_claimed_at=None,
    )
    if not moved:
        await repository.set_size_if_missing(session, video.id, size)
    await session.refresh(video)
    if moved:
        announce_status(session, hub, video, settings)
    return moved or video.status is not VideoStatus.PENDING


def playback_token(settings: Settings, video_id: str) -> str:
    """A signed, video-scoped token for players that cannot send headers."""
    now = utcnow()
    payload = {
        "sub": video_id,
        "typ": _PLAYBACK_TOKEN_KIND,
        "iat": now,
        "exp": now + timedelta(seconds=settings.media.playback_token_ttl_seconds),
        "iss": settings.jwt.issuer,
        "aud": f"{settings.jwt.audience}:media",
    }
    return jwt.encode(
        payload, settings.jwt.secret.get_secret_value(), algorithm=settings.jwt.algorithm
    )


def playback_token_video(settings: Settings, token: str) -> str | None:
    """The video id a playback token grants, or None if it is not a valid one."""
    try:
        payload = jwt.decode(
            token,
            settings.jwt.secret.get_secret_value(),
            algorithms=[settings.jwt.algorithm],
            audience=f"{settings.jwt.audience}:media",
            issuer=settings.jwt.issuer,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError:
        return None
    if payload.get("typ") != _PLAYBACK_TOKEN_KIND:
        return None
    return str(payload["sub"])


def media_urls(
    settings: Settings, video: Video, room: Room, origin: str
) -> tuple[str | None, str | None]:
    """(playback_url, thumbnail_url) of a ready video, absolute; private rooms get a token."""
    if video.status is not VideoStatus.READY:
        return None, None
    if video.provider == "bunny":
        # Served by Bunny's CDN (its own token authentication, if any, is set up there).
        urls = bunny_playback_urls(settings, video.external_id) if video.external_id else None
        return urls or (None, None)
    base = f"{origin}/media/videos/{video.id}"
    query = f"?token={playback_token(settings, video.id)}" if room.is_private else ""
    return f"{base}/master.m3u8{query}", f"{base}/thumbnail.jpg{query}"


def to_out(settings: Settings, video: Video, room: Room, origin: str) -> VideoOut:
    """The public shape of a video, its URLs starting with ``origin``."""
    playback, thumbnail = media_urls(settings, video, room, origin)
    return VideoOut(
        id=video.id,
        title=video.title,
        description=video.description,
        room_id=video.room_id,
        uploader_id=video.uploader_id,
        status=video.status.value,
        error=video.error,
        provider=video.provider,
        created_at=video.created_at,
        updated_at=video.updated_at,
        size_bytes=video.size_bytes,
        duration_seconds=video.duration_seconds,
        width=video.width,
        height=video.height,
        thumbnail_url=thumbnail,
        playback_url=playback,
    )


def status_frame(video: Video, settings: Settings) -> dict[str, Any]:
    """The ``video_status`` frame announcing a video's state to its room.

    Its ``playback_url`` is absolute when a public URL is configured (``kit.urls.frame_url``).
    """
    frame: dict[str, Any] = {
        "type": "video_status",
        "video_id": video.id,
        "room_id": video.room_id,
        "status": video.status.value,
        "title": video.title,
    }
    if video.status is VideoStatus.FAILED:
        frame["error"] = video.error
    if video.status is VideoStatus.READY:
        # Without a token: members fetch GET /videos/{id} for a (tokenised) URL.
        path = f"/media/videos/{video.id}/master.m3u8"
        frame["playback_url"] = frame_url(settings.public_url, path)
        if video.provider == "bunny":
            urls = bunny_playback_urls(settings, video.external_id or "")
            frame["playback_url"] = urls[0] if urls else None
        frame["duration_seconds"] = video.duration_seconds
    return frame


async def publish_status(hub: Hub, video: Video, settings: Settings) -> None:
    """Tell the room; a broker hiccup must not fail the upload or the job."""
    try:
        await hub.publish(video.room_id, status_frame(video, settings))
    except Exception:
        log.exception("video.status_publish_failed", video_id=video.id)


def announce_status(session: AsyncSession, hub: Hub, video: Video, settings: Settings) -> None:
    """Tell the room about the video's new status once the session's work is committed."""
    after_commit(session, partial(publish_status, hub, video, settings))


def visible_video(video: Video | None, room: Room | None, viewer_id: str | None) -> Video:
    """The video if its room is visible to the viewer, else 404 (existence never leaks)."""
    if video is None or room is None or not can_see(room, viewer_id):
        raise NotFound(VIDEO_NOT_FOUND)
    return video


async def managed_video(session: AsyncSession, video_id: str, user: User | None, act: Act) -> Video:
    """The video when the caller may rename or delete it (``act``).

    404 when the video or its room cannot be seen (nothing leaks), 403 for the banned,
    the muted (renaming) and anyone but the uploader and the managers who outrank them.
    ``user`` None is open auth mode's anonymous caller: allowed, as the prototype was.
    """
    video = await repository.get(session, video_id)
    room = await rooms_repository.get_room_view(session, video.room_id) if video else None
    viewer_id = user.id if user else None
    if video is None or room is None or not can_see(room, viewer_id):
        raise NotFound(VIDEO_NOT_FOUND)
    if user is None:
        return video
    require_may(room, user.id, act)
    if not may_manage_video(room, user.id, video.uploader_id):
        raise Forbidden(VIDEO_NOT_YOURS)
    return video


async def rename(
    session: AsyncSession, hub: Hub, settings: Settings, video: Video, title: str
) -> Video:
    """Give a video a new title; the room hears it (``video_status``) once committed."""
    if title != video.title:
        video.title = title
        await session.flush()
        await session.refresh(video)
        announce_status(session, hub, video, settings)
    return video


def deleted_frame(video: Video, by: str | None) -> dict[str, Any]:
    """The ``video_deleted`` frame: the room's clients drop the video (and stop playing it)."""
    return {"type": "video_deleted", "video_id": video.id, "room_id": video.room_id, "by": by}


async def delete(
    session: AsyncSession, hub: Hub, settings: Settings, video: Video, by: str | None
) -> None:
    """Delete a video in any state; its files go, and the room hears it, once committed.

    Whatever still works on it finds nothing afterwards: an upload in progress ends in
    409 and drops its bytes (``mark_uploaded``), a queued job has nothing to claim, and
    a running transcode cannot record "ready" (the worker only moves a row it finds)
    and removes what it wrote (``tasks.VideoProcessor``).
    """
    if not await repository.delete_video(session, video.id):
        raise NotFound(VIDEO_NOT_FOUND)
    storage = MediaStorage(settings.data_dir)
    after_commit(session, partial(discard_files, storage, video.id))
    if video.provider == bunny.PROVIDER and video.external_id and bunny.is_enabled(settings):
        after_commit(session, partial(_delete_at_bunny, settings, video.external_id))
    after_commit(session, partial(_publish, hub, video.room_id, deleted_frame(video, by)))


async def discard_files(storage: MediaStorage, video_id: str) -> None:
    """Remove everything a video has on disk: upload, source, HLS output, work folder."""
    await asyncio.to_thread(storage.discard_upload, video_id)
    await asyncio.to_thread(storage.discard_output, video_id)


async def _delete_at_bunny(settings: Settings, guid: str) -> None:
    """Best effort: the video is gone here either way; a leftover at Bunny is logged."""
    try:
        async with bunny.BunnyClient(settings.bunny) as client:
            await client.delete_video(guid)
    except Exception:
        log.warning("video.bunny_delete_failed", guid=guid)


async def _publish(hub: Hub, room_id: str, frame: dict[str, Any]) -> None:
    try:
        await hub.publish(room_id, frame)
    except Exception:
        log.exception("video.publish_failed", room_id=room_id, type=frame.get("type"))


UPLOADER_BANNED = "The uploader was banned from this room"


async def withdraw_uploads(
    session: AsyncSession, *, room_id: str, uploader_id: str, reason: str
) -> list[str]:
    """Fail someone's unfinished uploads in a room, unannounced (the caller commits).

    Slots stop taking bytes, queued jobs find nothing to do, and a transcode already
    running can no longer turn "ready" (the worker only moves "processing" on). Returns
    the ids whose files nobody is writing or reading, safe to delete once committed.
    """
    unfinished = [VideoStatus.PENDING, VideoStatus.UPLOADED, VideoStatus.PROCESSING]
    rows = (
        await session.execute(
            select(Video.id, Video.status, Video.upload_claimed_at).where(
                Video.room_id == room_id,
                Video.uploader_id == uploader_id,
                Video.status.in_(unfinished),
            )
        )
    ).all()
    if not rows:
        return []
    await session.execute(
        update(Video)
        .where(Video.id.in_([row.id for row in rows]), Video.status.in_(unfinished))
        .values(status=VideoStatus.FAILED, error=reason, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return [
        row.id
        for row in rows
        if row.status is VideoStatus.UPLOADED
        or (row.status is VideoStatus.PENDING and row.upload_claimed_at is None)
    ]
