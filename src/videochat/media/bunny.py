"""Provider ``bunny``: videos encoded and served by Bunny Stream.

The same API as the local provider: ``POST /rooms/{id}/video-upload`` creates the video
in the Bunny library (``POST /library/{id}/videos`` → ``guid``), ``PUT /upload-proxy/…``
relays the body to ``PUT /library/{id}/videos/{guid}`` as it arrives (never stored
here), and ``POST /bunny-webhook`` moves the status from Bunny's status codes.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.config import BunnySettings, Settings
from videochat.db.models import Video, VideoStatus
from videochat.exceptions import PayloadTooLarge, VideochatError
from videochat.media import repository
from videochat.media.probe import SNIFF_BYTES
from videochat.observability import metrics

log = structlog.get_logger(__name__)

PROVIDER = "bunny"
# Headers that may carry the webhook secret (besides ``?secret=``), and Bunny's own
# signature: hex HMAC-SHA256 of the raw body.
SECRET_HEADER = "x-webhook-secret"
SIGNATURE_HEADER = "x-bunnystream-signature"
MAX_WEBHOOK_BYTES = 64 * 1024

ENCODE_FAILED = "Bunny Stream could not encode the video"
UPLOAD_FAILED = "the upload to Bunny Stream failed"

# Bunny Stream's webhook status codes (docs.bunny.net, Stream → Webhooks) and what each
# one means here. 6 (pre-signed upload started), 9 (captions generated) and 10 (title
# or description generated) say nothing about playability: acknowledged, ignored.
STATUS_MAP: dict[int, tuple[VideoStatus, str | None]] = {
    0: (VideoStatus.UPLOADED, None),  # Queued
    1: (VideoStatus.PROCESSING, None),  # Processing
    2: (VideoStatus.PROCESSING, None),  # Encoding
    3: (VideoStatus.READY, None),  # Finished
    4: (VideoStatus.PROCESSING, None),  # Resolution finished (one rendition done)
    5: (VideoStatus.FAILED, ENCODE_FAILED),  # Failed
    7: (VideoStatus.UPLOADED, None),  # PresignedUploadFinished
    8: (VideoStatus.FAILED, UPLOAD_FAILED),  # PresignedUploadFailed
}
# Statuses only move forward: a late or repeated webhook never moves a video back.
_RANK = {
    VideoStatus.PENDING: 0,
    VideoStatus.UPLOADED: 1,
    VideoStatus.PROCESSING: 2,
    VideoStatus.READY: 3,
    VideoStatus.FAILED: 3,
}


class BunnyUnavailable(VideochatError):
    """Bunny Stream could not be reached or refused a request: a bad gateway for us."""

    status_code = 502


class BunnyWebhookBody(BaseModel):
    """What Bunny Stream posts: ``{"VideoLibraryId": 133, "VideoGuid": "…", "Status": 3}``."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    library_id: int | str = Field(alias="VideoLibraryId")
    video_guid: str = Field(alias="VideoGuid", min_length=1, max_length=64)
    status: int = Field(alias="Status", ge=0, le=1000)


@dataclass(frozen=True)
class BunnyVideoInfo:
    """The parts of Bunny's video object recorded here."""

    length_seconds: float | None
    width: int | None
    height: int | None


def is_enabled(settings: Settings) -> bool:
    return settings.bunny.enabled


def playback_urls(settings: Settings, guid: str) -> tuple[str, str] | None:
    """(playlist, thumbnail) on the library's CDN, or None without a CDN hostname."""
    host = settings.bunny.cdn_hostname
    if not host:
        return None
    base = f"https://{host.strip().rstrip('/')}/{guid}"
    return f"{base}/playlist.m3u8", f"{base}/thumbnail.jpg"


@cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle is the slow part of a client: once per process.
    return httpx.create_ssl_context()


class BunnyClient:
    """The few calls of Bunny Stream's HTTP API this service makes (AccessKey auth)."""

    def __init__(self, settings: BunnySettings, transport: httpx.AsyncBaseTransport | None = None):
        if not settings.api_key or not settings.library_id:
            raise RuntimeError("Bunny Stream is not configured")
        self.library_id = settings.library_id
        self._client = httpx.AsyncClient(
            base_url=settings.api_base_url.rstrip("/"),
            headers={
                "AccessKey": settings.api_key.get_secret_value(),
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(settings.timeout_seconds),
            verify=_tls(),
            transport=transport,
        )

    async def __aenter__(self) -> BunnyClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    def _videos(self, guid: str | None = None) -> str:
        path = f"/library/{self.library_id}/videos"
        return f"{path}/{guid}" if guid else path

    async def create_video(self, title: str) -> str:
        """Create an empty video in the library; its guid."""
        response = await self._call(
            "create the video", "POST", self._videos(), json={"title": title}
        )
        try:
            guid = response.json()["guid"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BunnyUnavailable("Bunny Stream answered without a video guid") from exc
        if not isinstance(guid, str) or not guid or len(guid) > 64:
            raise BunnyUnavailable("Bunny Stream answered with an invalid video guid")
        return guid

    async def upload(
        self, guid: str, body: AsyncIterator[bytes], *, length: int | None = None
    ) -> None:
        """Send a video's bytes as they come (chunked unless the length is known)."""
        headers = {"Content-Type": "application/octet-stream"}
        if length is not None:
            headers["Content-Length"] = str(length)
        await self._call(
            "upload the video", "PUT", self._videos(guid), content=body, headers=headers
        )

    async def delete_video(self, guid: str) -> None:
        """Remove a video (its files and encodings) from the library."""
        await self._call("delete the video", "DELETE", self._videos(guid))

    async def video_info(self, guid: str) -> BunnyVideoInfo:
        """Duration and size of an encoded video."""
        data: Any = (await self._call("read the video", "GET", self._videos(guid))).json()

        def number(key: str) -> float | None:
            value = data.get(key) if isinstance(data, dict) else None
            return float(value) if isinstance(value, int | float) and value > 0 else None

        width, height = number("width"), number("height")
        return BunnyVideoInfo(
            length_seconds=number("length"),
            width=int(width) if width else None,
            height=int(height) if height else None,
        )

    async def _call(self, what: str, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            log.warning("bunny.timeout", action=what, error=repr(exc))
            raise BunnyUnavailable(
                f"Bunny Stream did not answer in time (could not {what})"
            ) from exc
        except httpx.HTTPError as exc:
            log.warning("bunny.unreachable", action=what, error=repr(exc))
            raise BunnyUnavailable(f"Bunny Stream is unreachable (could not {what})") from exc
        if response.is_success:
            return response
        log.warning(
            "bunny.refused", action=what, status=response.status_code, body=response.text[:300]
        )
        raise BunnyUnavailable(f"Bunny Stream refused to {what} (HTTP {response.status_code})")


class _Relay:
    """The request body as an iterator for httpx, remembering why it stopped, if it did."""

    def __init__(self, head: bytes, rest: AsyncIterator[bytes], *, limit: int, too_large: str):
        self.head = head
        self.rest = rest
        self.size = len(head)
        self.limit = limit
        self.too_large = too_large
        self.error: BaseException | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            yield self.head
        try:
            async for chunk in self.rest:
                self.size += len(chunk)
                if self.size > self.limit:
                    raise PayloadTooLarge(self.too_large)
                yield chunk
        except BaseException as exc:
            self.error = exc
            raise


async def relay_upload(
    client: BunnyClient,
    guid: str,
    chunks: AsyncIterator[bytes],
    *,
    limit: int,
    too_large: str,
    sniff: Any,
    length: int | None,
) -> int:
    """Stream a request body to Bunny once its first bytes passed ``sniff``; its size.

    Raises what sniff raises, PayloadTooLarge past limit, the body's own error (client
    disconnect) or BunnyUnavailable; nothing is kept here either way.
    """
    head = bytearray()
    iterator = aiter(chunks)
    async for chunk in iterator:
        head += chunk
        if len(head) > limit:
            raise PayloadTooLarge(too_large)
        if len(head) >= SNIFF_BYTES:
            break
    sniff(bytes(head[:SNIFF_BYTES]))
    relay = _Relay(bytes(head), iterator, limit=limit, too_large=too_large)
    try:
        await client.upload(guid, aiter(relay), length=length)
    except BaseException:
        if relay.error is not None:
            raise relay.error from None
        raise
    return relay.size


def verify_webhook(
    settings: Settings, *, query_secret: str | None, headers: Any, body: bytes
) -> bool:
    """Whether a webhook carries the configured secret (URL or header) or Bunny's signature."""
    secret = settings.bunny.webhook_secret
    if secret is None:
        return False
    expected = secret.get_secret_value().encode()
    for offered in (query_secret, headers.get(SECRET_HEADER)):
        if offered and hmac.compare_digest(offered.encode(), expected):
            return True
    signature = headers.get(SIGNATURE_HEADER)
    if signature:
        digest = hmac.new(expected, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature.strip().lower().encode(), digest.encode())
    return False


async def apply_status(
    session: AsyncSession, settings: Settings, video: Video, code: int
) -> Video | None:
    """Move a Bunny video to what ``code`` means, only forward; the updated video or None.

    None when nothing changed: an unknown or informational code, the same status
    again, or a stale one (lower than where the video already is).
    """
    mapped = STATUS_MAP.get(code)
    if mapped is None:
        return None
    target, reason = mapped
    earlier = [status for status, rank in _RANK.items() if rank < _RANK[target]]
    values: dict[str, Any] = {"upload_claimed_at": None}
    if target is VideoStatus.FAILED:
        values["error"] = reason
    if target is VideoStatus.READY:
        values["error"] = None
        info = await _ready_info(settings, video)
        if info is not None:
            values.update(
                duration_seconds=info.length_seconds, width=info.width, height=info.height
            )
    if not await repository.transition(session, video.id, from_=earlier, to=target, **values):
        return None
    await session.refresh(video)
    if target in (VideoStatus.READY, VideoStatus.FAILED):
        outcome = "ready" if target is VideoStatus.READY else "failed"
        metrics.VIDEOS_PROCESSED.labels(outcome=outcome).inc()
    log.info("bunny.status", video_id=video.id, bunny_status=code, status=target.value)
    return video


async def _ready_info(settings: Settings, video: Video) -> BunnyVideoInfo | None:
    """Duration and size from Bunny, best effort: a failure here must not lose 'ready'."""
    if video.external_id is None or video.status in (VideoStatus.READY, VideoStatus.FAILED):
        return None
    try:
        async with BunnyClient(settings.bunny) as client:
            return await client.video_info(video.external_id)
    except BunnyUnavailable:
        return None
