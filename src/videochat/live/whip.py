"""WHIP (RFC 9725) endpoints: POST an SDP offer, DELETE the session to stop.

CORS: a publisher authenticates with its stream key in ``Authorization``, never with
cookies, so when no allow-list is configured any origin may publish (``*``); with
``VIDEOCHAT_CORS_ORIGINS`` set, the app's CORS middleware applies here as everywhere.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from videochat.context import Context, Origin, Session
from videochat.db.models import LiveStream
from videochat.db.unit_of_work import commit
from videochat.exceptions import BadRequest, NotFound, PayloadTooLarge, VideochatError
from videochat.live import repository, service
from videochat.live.ingest import LiveManager
from videochat.media.service import UnsupportedMediaType
from videochat.rooms import service as rooms
from videochat.rooms.policy import Act
from videochat.security.identity import bearer_token
from videochat.security.ratelimit import client_ip

router = APIRouter(tags=["live"])

SDP = "application/sdp"
# Real offers are a few kilobytes; this leaves room for many codecs and candidates.
MAX_OFFER_BYTES = 64 * 1024
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Post",
    "Access-Control-Max-Age": "600",
}


def get_manager(context: Context) -> LiveManager:
    """The running app's live manager."""
    return context.live


Manager = Annotated[LiveManager, Depends(get_manager)]


def _cors(context: Context) -> dict[str, str]:
    return {} if context.settings.cors_origins else dict(_CORS)


@asynccontextmanager
async def _errors_with_cors(context: Context) -> AsyncIterator[None]:
    # A browser can only read an error's detail if the error carries CORS headers too.
    try:
        yield
    except VideochatError as exc:
        exc.headers = {**(exc.headers or {}), **_cors(context)}
        raise


async def _authorized_stream(session: Session, request: Request, stream_id: str) -> LiveStream:
    stream = await repository.get(session, stream_id)
    if stream is None:
        raise NotFound(service.STREAM_NOT_FOUND)
    service.check_key(stream, bearer_token(request.headers.get("authorization")))
    return stream


async def _read_offer(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != SDP:
        raise UnsupportedMediaType(f"A WHIP offer must be sent as {SDP}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_OFFER_BYTES:
        raise PayloadTooLarge(f"An SDP offer may be at most {MAX_OFFER_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_OFFER_BYTES:
            raise PayloadTooLarge(f"An SDP offer may be at most {MAX_OFFER_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("The SDP offer is not UTF-8 text") from exc


@router.options("/whip/{stream_id}", include_in_schema=False)
@router.options("/whip/{stream_id}/sessions/{session_id}", include_in_schema=False)
async def whip_options(context: Context) -> Response:
    """CORS preflight; also says which body a POST takes."""
    return Response(status_code=204, headers={**_cors(context), "Accept-Post": SDP})


@router.post("/whip/{stream_id}", status_code=201, response_class=Response)
async def whip_publish(
    stream_id: str,
    request: Request,
    session: Session,
    context: Context,
    manager: Manager,
    origin: Origin,
) -> Response:
    """Start publishing: an SDP offer in, the SDP answer and the session URL out."""
    async with _errors_with_cors(context):
        stream = await _authorized_stream(session, request, stream_id)
        # The owner's standing now, not when the stream was made: banned, kicked from a
        # private room or muted since then, the key no longer publishes.
        await rooms.require_may(session, stream.room_id, user_id=stream.owner_id, act=Act.GO_LIVE)
        offer = await _read_offer(request)
        service.check_publishable(stream)
        # Committed mid-request on purpose: the WebRTC negotiation takes up to seconds,
        # and the pool's connection goes back meanwhile (the claim uses its own session).
        await commit(session)
        answer, ingest = await manager.publish(stream, offer, address=client_ip(request.scope))
    location = service.session_url(origin, stream, ingest.session_id)
    headers = {**_cors(context), "Location": location}
    return Response(answer, status_code=201, media_type=SDP, headers=headers)


@router.delete("/whip/{stream_id}/sessions/{session_id}", response_class=Response)
async def whip_stop(
    stream_id: str,
    session_id: str,
    request: Request,
    session: Session,
    context: Context,
    manager: Manager,
) -> Response:
    """Stop publishing: ends the stream and keeps the recording."""
    async with _errors_with_cors(context):
        await _authorized_stream(session, request, stream_id)
        ingest = manager.session(stream_id)
        if ingest is None or not secrets.compare_digest(ingest.session_id, session_id):
            raise NotFound("WHIP session not found")
        await manager.end(stream_id, "deleted")
    return Response(status_code=200, headers=_cors(context))


@router.patch("/whip/{stream_id}/sessions/{session_id}", include_in_schema=False)
async def whip_patch(context: Context) -> Response:
    """Trickle ICE and ICE restarts are not supported (the answer holds every candidate)."""
    raise VideochatError(
        "Trickle ICE is not supported: send the offer with all candidates",
        status_code=405,
        headers={**_cors(context), "Allow": "DELETE, OPTIONS"},
    )
