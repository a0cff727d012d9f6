"""WHIP ingest sessions: one aiortc peer connection and one recorder per live stream.

Keeps every peer connection it made and closes them all at shutdown (as aiortc's
server example does). A session ends by WHIP DELETE, by a stop, when the connection
fails or closes, or when no media arrived for ``publisher_timeout_seconds``; ending
always closes the playlist and keeps the broadcast as a video in the room's library.

aiortc (with ``dtls``, built on it) is imported when the first stream starts, not with
the app: ~0.13 s of CPU in every process that never ingests (workers, CLI commands,
most servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videochat.config import Settings
from videochat.db.models import LiveStream, LiveStreamStatus
from videochat.db.unit_of_work import unit_of_work
from videochat.exceptions import BadRequest, Conflict, ServiceUnavailable, TooManyRequests
from videochat.kit.clock import utcnow
from videochat.kit.ids import new_secret
from videochat.kit.locks import KeyedLock
from videochat.live import repository, service
from videochat.live.recorder import LiveRecorder, Recording
from videochat.media import service as media_service
from videochat.media.storage import MediaStorage
from videochat.realtime.hub import Hub

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection
    from aiortc.mediastreams import MediaStreamTrack

log = structlog.get_logger(__name__)

LIVE_INGESTS = Gauge("videochat_live_ingests_active", "WHIP publishers connected here")
# Instances tell each other to end a session they own (a stop that hit another one).
CONTROL_TOPIC = "videochat:live:control"
_WATCH_INTERVAL = 0.2


@dataclass(eq=False)
class IngestSession:
    """One publisher: its peer connection, recorder and the tasks reading its tracks."""

    stream_id: str
    room_id: str
    session_id: str
    pc: RTCPeerConnection
    recorder: LiveRecorder
    created_at: float = field(default_factory=time.monotonic)
    last_media_at: float = field(default_factory=time.monotonic)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # ICE and DTLS completed; until then the watchdog's connect timeout runs.
    connected: bool = False


@dataclass(frozen=True, slots=True)
class IngestSlot:
    """Who holds one of the instance's ingest slots, from the offer to the session's end."""

    owner_id: str | None
    address: str


class LiveManager:
    """The live streams this instance ingests."""

    def __init__(
        self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], hub: Hub
    ) -> None:
        self.app_settings = settings
        self.sessionmaker = sessionmaker
        self.hub = hub
        self.settings = settings.live
        self.storage = MediaStorage(settings.data_dir)
        self._sessions: dict[str, IngestSession] = {}
        self._ending: dict[str, asyncio.Future[None]] = {}
        self._locks = KeyedLock()
        # Taken before the negotiation's awaits, so concurrent offers cannot all pass
        # the limits; given back when the offer fails or the session ends.
        self._slots: dict[str, IngestSlot] = {}

    async def start(self) -> None:
        """Listen for stops from other instances; end streams a crash left "live"."""
        await self.hub.broker.subscribe(CONTROL_TOPIC, self._on_control)
        if self.app_settings.redis.url:
            return  # other instances may be ingesting those streams right now
        async with unit_of_work(self.sessionmaker) as session:
            for stream_id in await repository.ids_with_status(session, LiveStreamStatus.LIVE):
                await repository.transition(
                    session,
                    stream_id,
                    from_=[LiveStreamStatus.LIVE],
                    to=LiveStreamStatus.ENDED,
                    ended_at=utcnow(),
                    ended_reason="interrupted",
                )
                log.info("live.interrupted", stream_id=stream_id)

    async def stop(self) -> None:
        """End every session (their recordings are kept) and close every connection."""
        await self.hub.broker.unsubscribe(CONTROL_TOPIC, self._on_control)
        await asyncio.gather(
            *(self.end(stream_id, "shutdown") for stream_id in list(self._sessions)),
            return_exceptions=True,
        )

    def session(self, stream_id: str) -> IngestSession | None:
        """The local session of a stream, if this instance ingests it."""
        return self._sessions.get(stream_id)

    def _take_slot(self, stream: LiveStream, address: str) -> None:
        """Reserve an ingest slot for the stream, or refuse with what is full."""
        settings, slots = self.settings, self._slots.values()
        wait = {"Retry-After": str(math.ceil(settings.connect_timeout_seconds))}
        if len(self._slots) >= settings.max_streams:
            raise ServiceUnavailable(
                f"This server is at its limit of {settings.max_streams} live streams; "
                "try again later",
                headers=wait,
            )
        owner = stream.owner_id
        if owner is not None and sum(s.owner_id == owner for s in slots) >= (
            settings.max_streams_per_user
        ):
            raise TooManyRequests(
                f"The stream's owner already publishes {settings.max_streams_per_user} live "
                "streams at once; end one first",
                retry_after=math.ceil(settings.connect_timeout_seconds),
            )
        if sum(s.address == address for s in slots) >= settings.max_streams_per_address:
            raise TooManyRequests(
                f"{settings.max_streams_per_address} live streams are already published "
                "from your address; end one first",
                retry_after=math.ceil(settings.connect_timeout_seconds),
            )
        self._slots[stream.id] = IngestSlot(owner, address)

    async def publish(
        self, stream: LiveStream, offer: str, *, address: str = ""
    ) -> tuple[str, IngestSession]:
        """Answer a WHIP offer and start recording; returns the SDP answer and the session.

        One negotiation per stream at a time (the stream's lock), and an instance's
        slots are shared out: per owner, per publishing address, in all.
        """
        async with self._locks.hold(stream.id):
            if stream.id in self._sessions:
                raise Conflict("Someone is already publishing to this live stream")
            if stream.id in self._ending:
                raise service.Gone("This live stream has ended; create a new one")
            self._take_slot(stream, address)
            pc = self._peer_connection()
            try:
                answer, tracks = await self._negotiate(pc, offer)
                claimed = await self._claim(stream.id)
            except BaseException:
                self._slots.pop(stream.id, None)
                await pc.close()
                raise
            if not claimed:
                self._slots.pop(stream.id, None)
                await pc.close()
                async with self.sessionmaker() as session:
                    current = await repository.get(session, stream.id)
                if current is not None:
                    service.check_publishable(current)
                raise service.Gone("This live stream has ended; create a new one")
            recorder = LiveRecorder(
                self.storage.output_dir(stream.id),
                self.settings,
                with_audio=any(track.kind == "audio" for track in tracks),
            )
            recorder.start()
            ingest = IngestSession(
                stream_id=stream.id,
                room_id=stream.room_id,
                session_id=new_secret(16),
                pc=pc,
                recorder=recorder,
            )
            self._sessions[stream.id] = ingest
            LIVE_INGESTS.inc()
            self._watch_connection(ingest)
            ingest.tasks = [
                asyncio.create_task(self._read(ingest, track), name=f"live-{track.kind}")
                for track in tracks
            ]
            ingest.tasks.append(asyncio.create_task(self._watchdog(ingest), name="live-watch"))
            log.info("live.publishing", stream_id=stream.id, tracks=[t.kind for t in tracks])
        # Announced with the status change; the playlist follows one segment later
        # (players retry until it exists, see docs/LIVE.md).
        started = service.frame("live_started", stream, self.app_settings)
        await service.announce(self.hub, stream.room_id, started)
        return answer, ingest

    def _peer_connection(self) -> RTCPeerConnection:
        """A publisher's peer connection (RSA and ECDSA publishers alike: ``dtls``)."""
        from aiortc import RTCConfiguration, RTCIceServer

        from videochat.live import dtls

        # No STUN unless configured: aiortc would otherwise ask Google's.
        urls = self.app_settings.stun.urls
        configuration = RTCConfiguration(iceServers=[RTCIceServer(urls=urls)] if urls else [])
        return dtls.peer_connection(configuration)

    async def _negotiate(
        self, pc: RTCPeerConnection, offer: str
    ) -> tuple[str, list[MediaStreamTrack]]:
        from aiortc import RTCSessionDescription

        tracks: list[MediaStreamTrack] = []
        pc.on("track", tracks.append)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:
            # aiortc raises assorted errors on bad SDP, and OperationError when no codec
            # is shared (we take H.264 or VP8 video, Opus/PCMU/PCMA audio).
            raise BadRequest(f"Unusable SDP offer: {exc or type(exc).__name__}") from exc
        if not any(track.kind == "video" for track in tracks):
            raise BadRequest("The offer must send a video track")
        # Gathers every ICE candidate before returning: the answer is complete, so
        # the publisher needs no trickle ICE (WHIP's PATCH is not supported).
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp, tracks

    async def _claim(self, stream_id: str) -> bool:
        async with unit_of_work(self.sessionmaker) as session:
            return await repository.transition(
                session,
                stream_id,
                from_=[LiveStreamStatus.READY],
                to=LiveStreamStatus.LIVE,
                started_at=utcnow(),
            )

    def _watch_connection(self, ingest: IngestSession) -> None:
        @ingest.pc.on("connectionstatechange")
        def on_state() -> None:
            if ingest.pc.connectionState == "connected":
                ingest.connected = True
            if ingest.pc.connectionState in ("failed", "closed"):
                self._end_soon(ingest, "disconnected")

    def _end_soon(self, ingest: IngestSession, reason: str, *, keep_recording: bool = True) -> None:
        if self._sessions.get(ingest.stream_id) is ingest:
            task = asyncio.ensure_future(
                self.end(ingest.stream_id, reason, keep_recording=keep_recording)
            )
            task.add_done_callback(_log_failure)

    async def _read(self, ingest: IngestSession, track: MediaStreamTrack) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            ingest.last_media_at = time.monotonic()
            ingest.recorder.put(track.kind, frame)
        if track.kind == "video":
            self._end_soon(ingest, "disconnected")

    async def _watchdog(self, ingest: IngestSession) -> None:
        timeout = self.settings.publisher_timeout_seconds
        connect_timeout = self.settings.connect_timeout_seconds
        while True:
            await asyncio.sleep(_WATCH_INTERVAL)
            if ingest.recorder.failed.is_set():
                self._end_soon(ingest, "recorder_failed")
                return
            # An offer whose ICE/DTLS never completes would hold its slot otherwise.
            if not ingest.connected and time.monotonic() - ingest.created_at > connect_timeout:
                self._end_soon(ingest, "not_connected")
                return
            if time.monotonic() - ingest.last_media_at > timeout:
                self._end_soon(ingest, "timeout")
                return

    async def end(self, stream_id: str, reason: str, *, keep_recording: bool = True) -> None:
        """End a local session (idempotent; concurrent callers wait for the same end).

        Without ``keep_recording`` (a ban) nothing of the broadcast is kept or served.
        """
        pending = self._ending.get(stream_id)
        if pending is None:
            ingest = self._sessions.pop(stream_id, None)
            if ingest is None:
                return
            self._slots.pop(stream_id, None)
            LIVE_INGESTS.dec()
            pending = asyncio.ensure_future(self._end(ingest, reason, keep_recording))
            self._ending[stream_id] = pending
            pending.add_done_callback(lambda _: self._ending.pop(stream_id, None))
        # Shielded: a caller that goes away must not cut the archiving short.
        await asyncio.shield(pending)

    async def _end(self, ingest: IngestSession, reason: str, keep_recording: bool = True) -> None:
        current = asyncio.current_task()
        for task in ingest.tasks:
            if task is not current:
                task.cancel()
        await ingest.pc.close()
        recording = await asyncio.to_thread(ingest.recorder.finish)
        log.info(
            "live.ended",
            stream_id=ingest.stream_id,
            reason=reason,
            frames=ingest.recorder.frames_encoded,
            dropped=ingest.recorder.frames_dropped,
            seconds=recording.duration_seconds if recording else 0,
        )
        if not keep_recording:
            await asyncio.to_thread(self.storage.discard_output, ingest.stream_id)
            recording = None
        await self.finish_stream(ingest.stream_id, reason, recording)

    async def finish_stream(
        self, stream_id: str, reason: str, recording: Recording | None = None
    ) -> LiveStream | None:
        """Mark a stream ended, keep its recording as a ready video, tell the room."""
        video = None
        async with unit_of_work(self.sessionmaker) as session:
            moved = await repository.transition(
                session,
                stream_id,
                from_=[LiveStreamStatus.READY, LiveStreamStatus.LIVE],
                to=LiveStreamStatus.ENDED,
                ended_at=utcnow(),
                ended_reason=reason,
            )
            stream = await repository.get(session, stream_id)
            if stream is None:
                return None
            await session.refresh(stream)
            if recording is not None and stream.video_id is None:
                video = service.recording_video(
                    stream,
                    duration_seconds=recording.duration_seconds,
                    width=recording.width,
                    height=recording.height,
                    size_bytes=recording.size_bytes,
                )
                session.add(video)
                await session.flush()  # the row the link below points at
                await repository.set_video(session, stream_id, video.id)
                await session.refresh(stream)
        if moved or video is not None:
            ended = service.frame(
                "live_ended", stream, self.app_settings, reason=reason, video_id=stream.video_id
            )
            await service.announce(self.hub, stream.room_id, ended)
        if video is not None:
            await media_service.publish_status(self.hub, video, self.app_settings)
        return stream

    async def stop_stream(
        self, stream_id: str, reason: str, *, keep_recording: bool = True
    ) -> LiveStream | None:
        """End a stream wherever it is ingested (here, on another instance, or nowhere)."""
        if stream_id in self._sessions or stream_id in self._ending:
            await self.end(stream_id, reason, keep_recording=keep_recording)
            async with self.sessionmaker() as session:
                return await repository.get(session, stream_id)
        payload = json.dumps({"stop": stream_id, "reason": reason, "keep": keep_recording})
        with contextlib.suppress(Exception):
            await self.hub.broker.publish(CONTROL_TOPIC, payload)
        stream = await self.finish_stream(stream_id, reason)
        if not keep_recording:
            await asyncio.to_thread(self.storage.discard_output, stream_id)
        return stream

    async def stop_streams_of(
        self, room_id: str, owner_id: str, reason: str, *, keep_recording: bool = True
    ) -> None:
        """End someone's ready and live streams in a room (banned, kicked or muted)."""
        async with self.sessionmaker() as session:
            stream_ids = await repository.unfinished_of(session, room_id, owner_id)
        for stream_id in stream_ids:
            await self.stop_stream(stream_id, reason, keep_recording=keep_recording)

    def _on_control(self, payload: object) -> None:
        try:
            message: dict[str, Any] = json.loads(str(payload))
            stream_id, reason = str(message["stop"]), str(message["reason"])
            keep = bool(message.get("keep", True))
        except (ValueError, KeyError, TypeError):
            return
        ingest = self._sessions.get(stream_id)
        if ingest is not None:
            self._end_soon(ingest, reason, keep_recording=keep)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("live.end_failed", exc_info=task.exception())
