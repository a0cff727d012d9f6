"""HTTP routes of live streams: create, list, stop, and the live HLS files."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.accounts.auth import Actor, OptionalUser, acting_id, user_from_token
from videochat.config import Settings
from videochat.context import Context, Origin, Session, SettingsDep
from videochat.db.models import LiveStream, LiveStreamStatus, Room, User
from videochat.db.unit_of_work import commit
from videochat.exceptions import NotFound, Unauthorized
from videochat.kit.pagination import Offset
from videochat.live import repository, service
from videochat.live.playlist import MediaPlaylist
from videochat.live.schemas import LiveStreamCreate, LiveStreamOut
from videochat.live.whip import Manager
from videochat.live.whip import router as whip_router
from videochat.media import service as media_service
from videochat.media.storage import CONTENT_TYPES, MediaStorage
from videochat.observability import metrics
from videochat.rooms import repository as rooms_repository
from videochat.rooms import service as rooms
from videochat.rooms.policy import Act

router = APIRouter(tags=["live"])
router.include_router(whip_router)

_SEGMENT = re.compile(r"segment_\d{5,9}\.ts")
# Players re-read a live playlist every target duration: it must never be cached.
LIVE_PLAYLIST_CACHE = "no-cache, no-store"
IMMUTABLE = "max-age=31536000, immutable"


@router.post("/rooms/{room_id}/live-stream", response_model=LiveStreamOut)
async def create_live_stream(
    room_id: str,
    body: LiveStreamCreate,
    session: Session,
    context: Context,
    user: OptionalUser,
    origin: Origin,
) -> LiveStreamOut:
    """Create a stream (status ready) and its key; publish to ``whip_url`` with it.

    In open auth mode a caller naming no ``user_id`` creates a stream owned by nobody,
    as the prototype did (uploads alike).
    """
    settings = context.settings
    owner_id = acting_id(settings=settings, token_user=user, claimed_user_id=body.user_id)
    room = await rooms.get_visible(session, room_id, viewer_id=owner_id)
    await rooms.require_may(session, room_id, user_id=owner_id, act=Act.GO_LIVE)
    stream = await service.create(session, room=room, owner_id=owner_id, title=body.title)
    metrics.LIVE_STREAMS_CREATED.inc()
    out = service.to_out(settings, stream, room, viewer_id=owner_id, origin=origin)
    # The creator gets the key it publishes with, whoever owns the stream (or nobody).
    return out.model_copy(update={"stream_key": stream.stream_key})


@router.get("/rooms/{room_id}/live-streams", response_model=list[LiveStreamOut])
async def list_live_streams(
    room_id: str,
    session: Session,
    settings: SettingsDep,
    user: OptionalUser,
    origin: Origin,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> list[LiveStreamOut]:
    """A room's streams, newest first; keys only for their owners."""
    viewer_id = user.id if user else None
    room = await rooms.get_visible(session, room_id, viewer_id=viewer_id)
    found = await repository.list_for_room(session, room_id, limit=limit, offset=offset)
    return [
        service.to_out(settings, stream, room, viewer_id=viewer_id, origin=origin)
        for stream in found
    ]


async def _visible_stream(
    session: AsyncSession, stream_id: str, viewer_id: str | None
) -> tuple[LiveStream, Room]:
    stream = await repository.get(session, stream_id)
    room = await rooms_repository.get_room(session, stream.room_id) if stream else None
    if stream is None or room is None or not service.may_watch(room, viewer_id):
        raise NotFound(service.STREAM_NOT_FOUND)
    return stream, room


@router.get("/live-streams/{stream_id}", response_model=LiveStreamOut)
async def get_live_stream(
    stream_id: str, session: Session, settings: SettingsDep, user: OptionalUser, origin: Origin
) -> LiveStreamOut:
    """One stream."""
    viewer_id = user.id if user else None
    stream, room = await _visible_stream(session, stream_id, viewer_id)
    return service.to_out(settings, stream, room, viewer_id=viewer_id, origin=origin)


@router.post("/live-streams/{stream_id}/stop", response_model=LiveStreamOut)
async def stop_live_stream(
    stream_id: str,
    session: Session,
    context: Context,
    user: Actor,
    manager: Manager,
    origin: Origin,
) -> LiveStreamOut:
    """End a stream (its owner, or the room's owner or moderators); idempotent."""
    settings = context.settings
    actor = user.id if user else None
    stream, room = await _visible_stream(session, stream_id, actor)
    service.check_may_stop(stream, room, user)
    # Ends this session's (read-only) transaction now: the end below writes in sessions
    # of its own, which must not wait on one held open here.
    await commit(session)
    if stream.status is not LiveStreamStatus.ENDED:
        stream = await manager.stop_stream(stream_id, "stopped") or stream
    return service.to_out(settings, stream, room, viewer_id=actor, origin=origin)


@router.get("/live/{playback_id}/{name}", include_in_schema=False)
async def live_file(
    playback_id: str,
    name: str,
    session: Session,
    settings: SettingsDep,
    user: OptionalUser,
    token: Annotated[str | None, Query(max_length=4096)] = None,
) -> Response:
    """The live playlist (a sliding window; the whole broadcast once ended) and segments.

    Private rooms need a member's bearer token, or ``?token=`` holding an access token
    or the playback token found in ``pull_url``.
    """
    stream = await repository.get_by_playback_id(session, playback_id)
    room = await rooms_repository.get_room(session, stream.room_id) if stream else None
    if stream is None or room is None:
        raise NotFound(service.STREAM_NOT_FOUND)
    if room.is_private and not await _may_watch(session, settings, room, stream, user, token):
        raise NotFound(service.STREAM_NOT_FOUND)
    folder = MediaStorage(settings.data_dir).output_dir(stream.id) / service.RENDITION
    scope = "private" if room.is_private else "public"
    if name == service.PLAYLIST:
        text = await asyncio.to_thread(_read_text, folder / service.PLAYLIST)
        if text is None:
            raise NotFound("The stream has no segments yet")
        playlist = MediaPlaylist.parse(text)
        live = stream.status is LiveStreamStatus.LIVE and not playlist.ended
        body = playlist.render(window=settings.live.window_segments if live else None, token=token)
        cache = LIVE_PLAYLIST_CACHE if live else f"{scope}, max-age=10"
        return Response(body, media_type=CONTENT_TYPES[".m3u8"], headers={"Cache-Control": cache})
    if not _SEGMENT.fullmatch(name):
        raise NotFound("File not found")
    path = folder / name
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("File not found")
    headers = {"Cache-Control": f"{scope}, {IMMUTABLE}"}
    return FileResponse(path, media_type=CONTENT_TYPES[".ts"], headers=headers)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


async def _may_watch(
    session: AsyncSession,
    settings: Settings,
    room: Room,
    stream: LiveStream,
    user: User | None,
    token: str | None,
) -> bool:
    """Whether the caller may fetch a private room's live files."""
    viewer_id = user.id if user else None
    if viewer_id is None and token:
        # The stream id is also its recording's video id, so the library's token fits.
        if media_service.playback_token_video(settings, token) == stream.id:
            return True
        try:
            viewer_id = (await user_from_token(session, settings, token)).id
        except Unauthorized:
            return False
    return service.may_watch(room, viewer_id)
