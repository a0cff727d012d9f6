"""HTTP routes of the video library: upload slots, the upload proxy, listings, playback."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect

from videochat.accounts.auth import Actor, OptionalUser, user_from_token
from videochat.config import Settings
from videochat.context import AppContext, Context, Origin, Session, SettingsDep
from videochat.db.models import Room, User, Video, VideoStatus
from videochat.db.unit_of_work import after_commit
from videochat.exceptions import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
)
from videochat.kit.pagination import Offset
from videochat.media import bunny, repository, service
from videochat.media.schemas import (
    UploadResult,
    VideoOut,
    VideoUpdate,
    VideoUploadCreate,
    VideoUploadSlot,
    WebhookReceived,
)
from videochat.media.storage import CONTENT_TYPES, MediaStorage
from videochat.media.tus import router as tus_router
from videochat.observability import metrics
from videochat.rooms import repository as rooms_repository
from videochat.rooms import service as rooms
from videochat.rooms.policy import Act, can_see

log = structlog.get_logger(__name__)

router = APIRouter(tags=["videos"])
router.include_router(tus_router)

# Segments and thumbnails never change once a video is ready; playlists are rewritten
# per token, so they are kept briefly.
IMMUTABLE = "max-age=31536000, immutable"
PLAYLIST_CACHE = "max-age=10"


@router.post("/rooms/{room_id}/video-upload", response_model=VideoUploadSlot)
async def create_video_upload(
    room_id: str,
    body: VideoUploadCreate,
    session: Session,
    context: Context,
    user: Actor,
    origin: Origin,
) -> VideoUploadSlot:
    """Create a video and its single-use upload slot (PUT the bytes to ``upload_url``)."""
    settings = context.settings
    uploader_id = user.id if user else body.user_id
    room = await rooms.get_visible(session, room_id, viewer_id=uploader_id)
    await rooms.require_may(session, room_id, user_id=uploader_id, act=Act.UPLOAD)
    if body.size_bytes is not None and body.size_bytes > settings.media.max_upload_bytes:
        raise PayloadTooLarge(service.too_large_detail(settings))
    external_id = None
    if bunny.is_enabled(settings):
        # Counted before Bunny hears of it, without holding the lock through the call;
        # create_slot counts again, locked.
        await service.check_quota(
            session, settings, uploader_id, declared=body.size_bytes, lock=False
        )
        # Created at Bunny first: when Bunny is down the answer is a 502 and nothing
        # is stored here.
        async with bunny.BunnyClient(settings.bunny) as client:
            external_id = await client.create_video(body.title)
    video = await service.create_slot(
        session,
        settings,
        room=room,
        uploader_id=uploader_id,
        title=body.title,
        description=body.description,
        upload_length=body.size_bytes,
        provider=bunny.PROVIDER if external_id else "local",
        external_id=external_id,
    )
    service.announce_status(session, context.hub, video)
    return VideoUploadSlot(
        id=video.id,
        upload_url=service.upload_url(origin, video),
        status=video.status.value,
        title=video.title,
        upload_id=video.upload_id,
        expires_at=video.upload_expires_at,
        tus_url=service.tus_url(origin, video),
    )


@router.put("/upload-proxy/{upload_id}", response_model=UploadResult)
async def upload_proxy(
    upload_id: str, request: Request, session: Session, context: Context, user: Actor
) -> UploadResult:
    """Receive a slot's bytes as the raw request body, streamed to disk."""
    settings = context.settings
    video = await repository.get_by_upload_id(session, upload_id)
    if video is None:
        raise NotFound("Upload slot not found")
    service.check_uploader(settings, video, user)
    # Asked again at every upload: a ban or mute since the slot was made closes it.
    await rooms.require_may(session, video.room_id, user_id=video.uploader_id, act=Act.UPLOAD)
    service.check_slot_open(video)
    limit = await service.upload_limit(session, settings, video)
    if video.upload_length is not None and video.upload_length <= limit.bytes:
        limit = service.UploadLimit(video.upload_length, service.declared_detail(video))
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length must be a number")
        if int(declared) > limit.bytes:
            raise PayloadTooLarge(limit.detail)
    if not await service.claim_slot(session, video.id):
        raise Conflict("An upload to this slot is already in progress")
    if video.provider == bunny.PROVIDER:
        return await _relay_to_bunny(
            request, session, context, video, limit, None if declared is None else int(declared)
        )

    storage = MediaStorage(settings.data_dir)
    incoming = storage.partial_path(video.id)
    try:
        await asyncio.to_thread(storage.ensure_dirs)
        size = await service.receive_to_file(
            request.stream(),
            incoming,
            limit=limit.bytes,
            too_large=limit.detail,
            sniff=service.check_head,
        )
        service.check_declared_size(video, size)
    except BaseException as exc:
        # Refused or cut off: keep nothing, and free the slot for another try.
        await asyncio.to_thread(incoming.unlink, missing_ok=True)
        await service.release_claim(session, video.id)
        if isinstance(exc, ClientDisconnect):
            raise BadRequest("The upload was interrupted") from exc
        raise
    if not await service.mark_uploaded(session, context.hub, storage, video, size):
        await asyncio.to_thread(storage.discard_upload, video.id)
        raise Conflict("This upload slot has already been used")
    metrics.VIDEOS_UPLOADED.inc()
    # Only after the commit may a worker see the job.
    after_commit(session, partial(context.video_jobs.enqueue, video.id))
    return UploadResult(status="uploaded", upload_id=upload_id, video_id=video.id, size_bytes=size)


async def _relay_to_bunny(
    request: Request,
    session: AsyncSession,
    context: AppContext,
    video: Video,
    limit: service.UploadLimit,
    length: int | None,
) -> UploadResult:
    """The upload proxy of a Bunny video: the body goes on to Bunny as it arrives."""
    settings = context.settings
    if video.external_id is None or not bunny.is_enabled(settings):
        await service.release_claim(session, video.id)
        raise ServiceUnavailable("This video's provider (Bunny Stream) is not configured")
    try:
        async with bunny.BunnyClient(settings.bunny) as client:
            size = await bunny.relay_upload(
                client,
                video.external_id,
                request.stream(),
                limit=limit.bytes,
                too_large=limit.detail,
                sniff=service.check_head,
                length=length,
            )
    except BaseException as exc:
        # Refused, cut off or Bunny failed: the slot stays pending and usable.
        await service.release_claim(session, video.id)
        if isinstance(exc, ClientDisconnect):
            raise BadRequest("The upload was interrupted") from exc
        raise
    if not await service.mark_relayed(session, context.hub, video, size):
        raise Conflict("This upload slot has already been used")
    metrics.VIDEOS_UPLOADED.inc()
    return UploadResult(
        status="uploaded", upload_id=video.upload_id, video_id=video.id, size_bytes=size
    )


@router.post("/bunny-webhook", response_model=WebhookReceived)
async def bunny_webhook(
    request: Request,
    session: Session,
    context: Context,
    secret: Annotated[str | None, Query(max_length=512)] = None,
) -> WebhookReceived:
    """Bunny Stream's status callback (authenticated, idempotent, never moves backwards).

    The secret comes as ``?secret=``, an ``X-Webhook-Secret`` header, or Bunny's own
    ``X-BunnyStream-Signature`` (HMAC-SHA256 of the body keyed with the secret).
    """
    settings = context.settings
    if not bunny.is_enabled(settings):
        raise NotFound("Bunny Stream is not configured")
    if settings.bunny.webhook_secret is None:
        raise ServiceUnavailable(
            "Bunny webhooks are off: VIDEOCHAT_BUNNY__WEBHOOK_SECRET is not set"
        )
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise BadRequest("Content-Length must be a number")
    if declared is not None and int(declared) > bunny.MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge("The webhook body is too large")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > bunny.MAX_WEBHOOK_BYTES:
            raise PayloadTooLarge("The webhook body is too large")
    if not bunny.verify_webhook(
        settings, query_secret=secret, headers=request.headers, body=bytes(raw)
    ):
        raise Unauthorized("Missing or wrong webhook secret")
    try:
        body = bunny.BunnyWebhookBody.model_validate_json(bytes(raw))
    except ValidationError as exc:
        fields = ", ".join(str(error["loc"][0]) for error in exc.errors() if error["loc"]) or "body"
        raise BadRequest(f"Not a Bunny Stream webhook (check {fields})") from exc
    if str(body.library_id) != settings.bunny.library_id:
        raise BadRequest("Unknown video library")
    video = await repository.get_by_external_id(session, body.video_guid)
    if video is None or video.provider != bunny.PROVIDER:
        # Acknowledged so Bunny stops retrying (say, a video deleted here).
        log.info("bunny.webhook_unknown_video", guid=body.video_guid, bunny_status=body.status)
        return WebhookReceived()
    updated = await bunny.apply_status(session, settings, video, body.status)
    if updated is not None:
        service.announce_status(session, context.hub, updated, settings)
    return WebhookReceived()


@router.get("/rooms/{room_id}/videos", response_model=list[VideoOut])
async def list_videos(
    room_id: str,
    session: Session,
    settings: SettingsDep,
    user: OptionalUser,
    origin: Origin,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    offset: Offset = 0,
) -> list[VideoOut]:
    """A room's videos, newest first."""
    room = await rooms.get_visible(session, room_id, viewer_id=user.id if user else None)
    found = await repository.list_for_room(session, room_id, limit=limit, offset=offset)
    return [service.to_out(settings, video, room, origin) for video in found]


@router.get("/videos/{video_id}", response_model=VideoOut)
async def get_video(
    video_id: str, session: Session, settings: SettingsDep, user: OptionalUser, origin: Origin
) -> VideoOut:
    """One video with its playback and thumbnail URLs (once ready)."""
    video = await repository.get(session, video_id)
    room = await rooms_repository.get_room(session, video.room_id) if video else None
    video = service.visible_video(video, room, user.id if user else None)
    assert room is not None
    return service.to_out(settings, video, room, origin)


@router.patch("/videos/{video_id}", response_model=VideoOut)
async def rename_video(
    video_id: str,
    body: VideoUpdate,
    session: Session,
    context: Context,
    user: Actor,
    origin: Origin,
) -> VideoOut:
    """Rename a video (its uploader, or the room's owner or a moderator above them)."""
    settings = context.settings
    video = await service.managed_video(session, video_id, user, Act.RENAME_VIDEO)
    video = await service.rename(session, context.hub, settings, video, body.title)
    room = await rooms_repository.get_room(session, video.room_id)
    assert room is not None  # the video's room: its row holds the video's
    return service.to_out(settings, video, room, origin)


@router.delete("/videos/{video_id}", status_code=204)
async def delete_video(video_id: str, session: Session, context: Context, user: Actor) -> Response:
    """Delete a video in any state, with its files (uploader, room owner, moderators)."""
    video = await service.managed_video(session, video_id, user, Act.DELETE_VIDEO)
    await service.delete(session, context.hub, context.settings, video, user.id if user else None)
    return Response(status_code=204)


@router.get("/media/videos/{video_id}/{path:path}", include_in_schema=False)
async def media_file(
    video_id: str,
    path: str,
    request: Request,
    session: Session,
    settings: SettingsDep,
    user: OptionalUser,
    token: Annotated[str | None, Query(max_length=4096)] = None,
) -> Response:
    """A ready video's HLS playlists, segments and thumbnail.

    Private rooms' files need a member's bearer token, or ``?token=`` holding either
    an access token or the playback token found in the video's ``playback_url``.
    """
    video = await repository.get(session, video_id)
    room = await rooms_repository.get_room(session, video.room_id) if video else None
    if video is None or room is None or video.status is not VideoStatus.READY:
        raise NotFound("File not found")
    if room.is_private and not await _may_play(session, settings, room, video.id, user, token):
        raise NotFound("File not found")
    target = await asyncio.to_thread(MediaStorage(settings.data_dir).public_file, video.id, path)
    if target is None:
        raise NotFound("File not found")
    scope = "private" if room.is_private else "public"
    media_type = CONTENT_TYPES[target.suffix]
    if target.suffix == ".m3u8":
        headers = {"Cache-Control": f"{scope}, {PLAYLIST_CACHE}"}
        if token:
            # Players resolve relative URIs without our query string: hand it on.
            text = await asyncio.to_thread(target.read_text, encoding="utf-8")
            return Response(_with_token(text, token), media_type=media_type, headers=headers)
        return FileResponse(target, media_type=media_type, headers=headers)
    headers = {"Cache-Control": f"{scope}, {IMMUTABLE}"}
    return FileResponse(target, media_type=media_type, headers=headers)


async def _may_play(
    session: AsyncSession,
    settings: Settings,
    room: Room,
    video_id: str,
    user: User | None,
    token: str | None,
) -> bool:
    """Whether the caller may fetch a private room's video files."""
    viewer_id = user.id if user else None
    if viewer_id is None and token:
        if service.playback_token_video(settings, token) == video_id:
            return True
        try:
            viewer_id = (await user_from_token(session, settings, token)).id
        except Unauthorized:
            return False
    return can_see(room, viewer_id)


def _with_token(playlist: str, token: str) -> str:
    """Append ``?token=`` to every URI line of a playlist."""
    lines = [
        f"{line}?token={quote(token, safe='')}" if line and not line.startswith("#") else line
        for line in playlist.splitlines()
    ]
    return "\n".join(lines) + "\n"
