"""Resumable uploads with the tus 1.0 protocol (core, creation, creation-defer-length,
termination), on the same upload slots as the compatible PUT.

``POST /uploads/tus`` creates a video from ``Upload-Metadata`` (``room_id``, ``title``,
``description``); a slot made by ``POST /rooms/{id}/video-upload`` is already a tus
resource at its ``tus_url``. A slot made without ``size_bytes`` learns its length from a
creation ``POST`` to its ``tus_url`` (what tus clients given that URL as their endpoint
send) or from a ``PATCH`` carrying ``Upload-Length`` (creation-defer-length).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from functools import partial
from typing import NoReturn

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from videochat.accounts.auth import OptionalUser, require_actor
from videochat.config import Settings
from videochat.context import Context, Origin, Session
from videochat.db.models import User, Video, VideoStatus
from videochat.db.unit_of_work import after_commit
from videochat.exceptions import VideochatError
from videochat.kit.clock import utcnow
from videochat.media import bunny, repository, service
from videochat.media.schemas import TusUploadMetadata
from videochat.media.storage import MediaStorage
from videochat.observability import metrics
from videochat.rooms import service as rooms
from videochat.rooms.policy import Act

router = APIRouter(tags=["videos"])

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-defer-length,termination"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
# What the answers below carry that a browser client on another origin must be allowed
# to read (the app's CORS exposes them).
TUS_RESPONSE_HEADERS = (
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Defer-Length",
    "X-Video-Id",
)
BASE = "/uploads/tus"
BUNNY_NO_TUS = (
    "Resumable uploads are not available for Bunny Stream videos: "
    "create a slot with POST /rooms/{id}/video-upload and PUT the bytes to its upload_url"
)


class TusError(VideochatError):
    """An error that still carries the Tus-Resumable header clients look for."""

    def __init__(self, status_code: int, detail: str, extra: dict[str, str] | None = None) -> None:
        headers = {"Tus-Resumable": TUS_VERSION, **(extra or {})}
        super().__init__(detail, status_code=status_code, headers=headers)


def _check_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        detail = f"Tus-Resumable {TUS_VERSION} is required"
        raise TusError(412, detail, {"Tus-Version": TUS_VERSION})


def _int_header(request: Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise TusError(400, f"{name} must be a non-negative integer")
    return int(raw)


def parse_metadata(raw: str | None) -> dict[str, str]:
    """Decode ``Upload-Metadata``: comma-separated ``key base64value`` pairs."""
    found: dict[str, str] = {}
    for item in (raw or "").split(","):
        key, _, value = item.strip().partition(" ")
        if not key:
            continue
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise TusError(400, f"Upload-Metadata value of {key!r} is not base64 UTF-8") from exc
    return found


def _check_length(settings: Settings, length: int | None) -> None:
    """A declared Upload-Length must be a possible video: not empty, not over the limit."""
    if length is None:
        return
    if length == 0:
        raise TusError(400, "Upload-Length must be at least 1: an empty file is not a video")
    if length > settings.media.max_upload_bytes:
        raise TusError(413, service.too_large_detail(settings))


def upload_fields(meta: dict[str, str]) -> TusUploadMetadata:
    """Validate the metadata by the JSON route's rules; 400 saying which value is wrong."""
    if not meta.get("room_id") or not (meta.get("title") or meta.get("filename")):
        raise TusError(400, "Upload-Metadata must include room_id and title (or filename)")
    values = {
        "room_id": meta["room_id"],
        "title": meta.get("title") or meta["filename"],
        "description": meta.get("description", ""),
        "user_id": meta.get("user_id"),
    }
    try:
        return TusUploadMetadata.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise TusError(400, f"Upload-Metadata is not valid: {problems}") from exc


def _created(origin: str, video: Video) -> Response:
    """201 for a creation: where the upload lives, and which video it fills."""
    headers = {
        "Location": service.tus_url(origin, video),
        "Tus-Resumable": TUS_VERSION,
        "X-Video-Id": video.id,
    }
    return Response(status_code=201, headers=headers)


def _headers(video: Video, offset: int) -> dict[str, str]:
    headers = {
        "Tus-Resumable": TUS_VERSION,
        "Upload-Offset": str(offset),
        "Cache-Control": "no-store",
    }
    if video.upload_length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(video.upload_length)
    return headers


async def _offset(storage: MediaStorage, video: Video) -> int:
    """Bytes received so far: the partial file is the truth, even after a crash."""
    if video.status is not VideoStatus.PENDING:
        return video.size_bytes or 0
    path = storage.partial_path(video.id)
    return await asyncio.to_thread(lambda: path.stat().st_size if path.exists() else 0)


async def _slot(session: Session, settings: Settings, upload_id: str, user: User | None) -> Video:
    require_actor(settings, user)
    video = await repository.get_by_upload_id(session, upload_id)
    if video is None:
        raise TusError(404, "Upload not found")
    service.check_uploader(settings, video, user)
    if video.provider == bunny.PROVIDER:
        raise TusError(409, BUNNY_NO_TUS)
    if video.status is VideoStatus.PENDING and video.upload_expires_at <= utcnow():
        raise TusError(410, "This upload has expired; create a new one")
    return video


@router.options(BASE, include_in_schema=False)
@router.options(BASE + "/{upload_id}", include_in_schema=False)
async def tus_options(context: Context) -> Response:
    """Advertise the protocol version, extensions and size limit."""
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(context.settings.media.max_upload_bytes),
        },
    )


@router.post(BASE, status_code=201)
async def tus_create(
    request: Request, session: Session, context: Context, user: OptionalUser, origin: Origin
) -> Response:
    """Create a video and its upload from Upload-Length and Upload-Metadata."""
    _check_version(request)
    settings = context.settings
    require_actor(settings, user)
    if bunny.is_enabled(settings):
        raise TusError(409, BUNNY_NO_TUS)
    length = _int_header(request, "upload-length")
    if length is None and request.headers.get("upload-defer-length") != "1":
        raise TusError(400, "Upload-Length (or Upload-Defer-Length: 1) is required")
    _check_length(settings, length)
    fields = upload_fields(parse_metadata(request.headers.get("upload-metadata")))
    uploader_id = user.id if user else fields.user_id
    room = await rooms.get_visible(session, fields.room_id, viewer_id=uploader_id)
    await rooms.require_may(session, room.id, user_id=uploader_id, act=Act.UPLOAD)
    try:
        video = await service.create_slot(
            session,
            settings,
            room=room,
            uploader_id=uploader_id,
            title=fields.title,
            description=fields.description,
            upload_length=length,
        )
    except VideochatError as exc:  # 409 / 413 from the user's caps
        exc.headers = {**(exc.headers or {}), "Tus-Resumable": TUS_VERSION}
        raise
    service.announce_status(session, context.hub, video, settings)
    return _created(origin, video)


@router.post(BASE + "/{upload_id}", status_code=201, include_in_schema=False)
async def tus_create_on_slot(
    upload_id: str,
    request: Request,
    session: Session,
    context: Context,
    user: OptionalUser,
    origin: Origin,
) -> Response:
    """tus creation on a slot's own ``tus_url``: the slot exists, the POST fixes its length.

    tus clients given the slot's URL as their creation endpoint POST their file's
    ``Upload-Length`` there and follow ``Location`` (this same URL); tuspy can finish no
    other way, since it never sends the length on a PATCH. The slot keeps its title: the
    metadata (``filename``, ``filetype``) is only checked for well-formedness.
    """
    _check_version(request)
    settings = context.settings
    video = await _slot(session, settings, upload_id, user)
    if video.status is not VideoStatus.PENDING:
        raise TusError(409, "This upload is already complete")
    parse_metadata(request.headers.get("upload-metadata"))
    length = _int_header(request, "upload-length")
    if length is None and request.headers.get("upload-defer-length") != "1":
        raise TusError(400, "Upload-Length (or Upload-Defer-Length: 1) is required")
    _check_length(settings, length)
    if length is not None and video.upload_length is None:
        received = await _offset(MediaStorage(settings.data_dir), video)
        if length < received:
            raise TusError(409, f"{received} bytes were received already, more than {length}")
        allowed = await service.upload_limit(session, settings, video)
        if length > allowed.bytes:
            raise TusError(413, allowed.detail)
        await repository.set_upload_length(session, video.id, length)
        if received == length:
            # Every byte came before the length did (deferred): this POST completes it.
            if not await service.claim_slot(session, video.id):
                raise TusError(423, "Another request is writing to this upload")
            await _complete(session, context, video, received)
    elif length is not None and length != video.upload_length:
        detail = f"This upload's length is {video.upload_length} bytes, not {length}"
        raise TusError(409, detail)
    return _created(origin, video)


@router.head(BASE + "/{upload_id}", include_in_schema=False)
async def tus_head(
    upload_id: str, request: Request, session: Session, context: Context, user: OptionalUser
) -> Response:
    """Where to resume: the number of bytes received."""
    _check_version(request)
    video = await _slot(session, context.settings, upload_id, user)
    offset = await _offset(MediaStorage(context.settings.data_dir), video)
    return Response(status_code=200, headers=_headers(video, offset))


@router.patch(BASE + "/{upload_id}", include_in_schema=False)
async def tus_patch(
    upload_id: str, request: Request, session: Session, context: Context, user: OptionalUser
) -> Response:
    """Append bytes at Upload-Offset; the last one queues the video for processing."""
    _check_version(request)
    settings = context.settings
    if request.headers.get("content-type", "").split(";")[0].strip() != OFFSET_CONTENT_TYPE:
        raise TusError(415, f"Content-Type must be {OFFSET_CONTENT_TYPE}")
    video = await _slot(session, settings, upload_id, user)
    # Asked at every PATCH: a ban or mute since the upload began stops it.
    await rooms.require_may(session, video.room_id, user_id=video.uploader_id, act=Act.UPLOAD)
    if video.status is not VideoStatus.PENDING:
        raise TusError(409, "This upload is already complete")
    offset = _int_header(request, "upload-offset")
    if offset is None:
        raise TusError(400, "Upload-Offset is required")
    length = _int_header(request, "upload-length")
    if length is not None and video.upload_length not in (None, length):
        raise TusError(400, f"Upload-Length is {video.upload_length} and cannot change")
    # A deferred length is recorded only once bytes were accepted, so a refused first
    # PATCH (not a video, too large) fixes nothing.
    deferred = video.upload_length is None and length is not None
    declared = length if deferred else video.upload_length
    if deferred:
        _check_length(settings, declared)
    storage = MediaStorage(settings.data_dir)
    current = await _offset(storage, video)
    if offset != current:
        raise TusError(409, f"Upload-Offset {offset} does not match the upload's {current}")
    body_length = _int_header(request, "content-length")
    if declared is not None and body_length is not None and current + body_length > declared:
        # Refused before a byte is read: the upload never grows past what it declared.
        raise TusError(413, f"More bytes than the declared length of {declared}")
    allowed = await service.upload_limit(session, settings, video)
    if declared is not None and declared > allowed.bytes:
        raise TusError(413, allowed.detail)
    if not await service.claim_slot(session, video.id):
        raise TusError(423, "Another request is writing to this upload")
    try:
        await asyncio.to_thread(storage.ensure_dirs)
        size = await service.receive_to_file(
            request.stream(),
            storage.partial_path(video.id),
            limit=declared if declared is not None else allowed.bytes,
            too_large=f"More bytes than the declared length of {declared}"
            if declared is not None
            else allowed.detail,
            start=current,
            sniff=service.check_head if current == 0 else None,
            keep_on_disconnect=True,
        )
    except BaseException as exc:
        if deferred and declared is not None and isinstance(exc, ClientDisconnect):
            # Bytes were kept: the length they belong to is fixed from now on.
            await repository.set_upload_length(session, video.id, declared)
        await service.release_claim(session, video.id)
        if isinstance(exc, ClientDisconnect):
            raise TusError(400, "The upload was interrupted; resume it with HEAD") from exc
        if isinstance(exc, VideochatError):  # 413 / 415 from the size check or the sniff
            exc.headers = {**(exc.headers or {}), "Tus-Resumable": TUS_VERSION}
        raise
    await repository.release_upload(session, video.id)
    if (
        deferred
        and declared is not None
        and not await repository.set_upload_length(session, video.id, declared)
    ):
        await _drop_deleted(storage, video.id)
    if video.upload_length is None:
        # Set by this PATCH, or by a creation POST on the slot while it was writing.
        await session.refresh(video)
    if video.upload_length is not None and size == video.upload_length:
        await _complete(session, context, video, size)
    return Response(status_code=204, headers=_headers(video, size))


async def _complete(session: Session, context: Context, video: Video, size: int) -> None:
    """The last byte is in: the video is uploaded and its job queued once committed."""
    storage = MediaStorage(context.settings.data_dir)
    if not await service.mark_uploaded(
        session, context.hub, context.settings, storage, video, size
    ):
        await _drop_deleted(storage, video.id)
    metrics.VIDEOS_UPLOADED.inc()
    # Only after the commit may a worker see the job.
    after_commit(session, partial(context.video_jobs.enqueue, video.id))


async def _drop_deleted(storage: MediaStorage, video_id: str) -> NoReturn:
    """The video was deleted (or withdrawn) while this PATCH wrote: keep none of it."""
    await asyncio.to_thread(storage.discard_upload, video_id)
    raise TusError(409, "This upload was deleted or withdrawn while its bytes arrived")


@router.delete(BASE + "/{upload_id}", status_code=204, include_in_schema=False)
async def tus_terminate(
    upload_id: str, request: Request, session: Session, context: Context, user: OptionalUser
) -> Response:
    """Abandon an unfinished upload: its bytes and its video are deleted."""
    _check_version(request)
    video = await _slot(session, context.settings, upload_id, user)
    if video.status is not VideoStatus.PENDING:
        raise TusError(409, "A finished upload cannot be terminated")
    await asyncio.to_thread(MediaStorage(context.settings.data_dir).discard_upload, video.id)
    await repository.delete_pending(session, video.id)
    return Response(status_code=204, headers={"Tus-Resumable": TUS_VERSION})
