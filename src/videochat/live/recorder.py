"""Received frames -> live HLS (H.264 + AAC in MPEG-TS) with PyAV, in a thread of its own.

The event loop only queues decoded frames; a dedicated thread scales, encodes and muxes
them. Every segment is kept: the playlist the muxer writes lists them all (an EVENT
playlist), viewers get a sliding window of it, and at the end it becomes the archive's
VOD playlist next to a master playlist and a thumbnail, the layout of the video library.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import structlog
from av.video.frame import PictureType

from videochat.config import LiveSettings
from videochat.live.playlist import MediaPlaylist
from videochat.live.service import PLAYLIST, RENDITION
from videochat.media.hls import (
    AUDIO_RATE,
    AUDIO_TIME_BASE,
    THUMBNAIL,
    VIDEO_TIME_BASE,
    HlsWriter,
    SegmentCutter,
    new_audio_resampler,
    write_jpeg,
    write_master_playlist,
)
from videochat.media.transcode import Rendition, plan_renditions

log = structlog.get_logger(__name__)

# Frames looked at before the encoder opens, to measure the real frame rate.
_STARTUP_FRAMES = 8
# Queue bound: a few seconds of audio and video; past it frames are dropped, never
# buffered without limit when the encoder falls behind.
_QUEUE_ITEMS = 200
# An audio timestamp jump larger than this is a gap (loss, a muted sender), not jitter.
_AUDIO_GAP = Fraction(1, 10)
_THUMBNAIL_AT = 1.0  # seconds into the broadcast


@dataclass(frozen=True)
class Recording:
    """What a finished broadcast left in the output folder."""

    duration_seconds: float
    width: int
    height: int
    size_bytes: int
    segments: int


class _RtpClock:
    """Unwraps 32-bit RTP timestamps into ticks since the first one seen."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._total = 0

    def ticks(self, raw: int) -> int:
        if self._last is not None:
            delta = (raw - self._last) % 2**32
            # A step "backwards" (reordering) shows up as an almost-full wrap.
            self._total += delta - 2**32 if delta >= 2**31 else delta
        self._last = raw
        return self._total


class LiveRecorder:
    """Feeds one broadcast's frames to a thread that writes its HLS."""

    def __init__(self, out_dir: Path, settings: LiveSettings, *, with_audio: bool) -> None:
        self.out_dir = out_dir
        self.folder = out_dir / RENDITION
        self.playlist = self.folder / PLAYLIST
        self.settings = settings
        self.with_audio = with_audio
        self.failed = threading.Event()
        self.frames_dropped = 0
        self.frames_encoded = 0
        self.started_at: float | None = None  # monotonic time of the first video frame
        self._queue: queue.Queue[tuple[str, Any, float] | None] = queue.Queue(_QUEUE_ITEMS)
        self._thread = threading.Thread(target=self._run, name="live-recorder", daemon=True)
        self._result: Recording | None = None
        self._writer: HlsWriter | None = None
        self._pending: list[tuple[Any, int, float]] = []
        self._video_clock = _RtpClock()
        self._last_pts: int | None = None
        self._nominal_ticks = 90_000 // 30
        self._cutter = SegmentCutter(settings.segment_seconds)
        self._thumbnail: Any = None
        self._thumbnail_final = False
        self._audio_clock = _RtpClock()
        self._audio_origin: Fraction | None = None
        self._audio_in_next: Fraction | None = None
        self._audio_out_next = 0
        self._resampler: Any = None
        self._resampler_key: tuple[str, str, int] | None = None

    def start(self) -> None:
        """Start the encoding thread."""
        self._thread.start()

    def put(self, kind: str, frame: Any) -> None:
        """Queue a decoded frame ("video" or "audio"); drops it if the encoder is behind."""
        try:
            self._queue.put_nowait((kind, frame, time.monotonic()))
        except queue.Full:
            self.frames_dropped += 1

    def finish(self) -> Recording | None:
        """Stop, close the playlist and write the archive files (blocking: call in a thread)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        return self._result

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                if self.failed.is_set():
                    continue  # drain, so put() never blocks the event loop
                kind, frame, arrival = item
                try:
                    if kind == "video":
                        self._on_video(frame, arrival)
                    elif self._writer is not None and self._writer.audio is not None:
                        self._on_audio(frame, arrival)
                except Exception:
                    log.exception("live.recorder_failed", folder=str(self.folder))
                    self.failed.set()
            self._result = self._close()
        except Exception:
            log.exception("live.recorder_close_failed", folder=str(self.folder))
            self.failed.set()

    def _on_video(self, frame: Any, arrival: float) -> None:
        if self.started_at is None:
            self.started_at = arrival
        if frame.pts is not None and frame.time_base == VIDEO_TIME_BASE:
            ticks = self._video_clock.ticks(int(frame.pts))
        else:
            ticks = round((arrival - self.started_at) * 90_000)
        if self._writer is None:
            self._pending.append((frame, ticks, arrival))
            if len(self._pending) >= _STARTUP_FRAMES:
                self._open()
            return
        self._encode_video(frame, ticks)

    def _open(self) -> None:
        """Measure the frame rate on the first frames, size the picture, start the muxer."""
        first, last = self._pending[0][1], self._pending[-1][1]
        span = last - first
        fps = Fraction(30)
        if len(self._pending) > 1 and span > 0:
            measured = (len(self._pending) - 1) * 90_000 / span
            fps = Fraction(min(60.0, max(1.0, measured))).limit_denominator(1000)
        self._nominal_ticks = max(1, round(90_000 / fps))
        frame = self._pending[0][0]
        rung = Rendition(RENDITION, self.settings.max_height // 2 * 2, 1, 1)
        (plan,) = plan_renditions(frame.width, frame.height, [rung])
        pixels = plan.width * plan.height / (1280 * 720)
        self._writer = HlsWriter(
            self.folder,
            width=plan.width,
            height=plan.height,
            frame_rate=fps,
            segment_seconds=self.settings.segment_seconds,
            # The configured bitrate is for 720p: scaled by pixel count.
            video_bitrate=max(300_000, round(self.settings.video_bitrate * pixels)),
            audio_bitrate=self.settings.audio_bitrate if self.with_audio else None,
            live=True,
            # Only a fallback GOP: keyframes are forced at every segment start.
            gop_segments=2,
        )
        log.info(
            "live.recording", folder=str(self.folder), size=f"{plan.width}x{plan.height}", fps=fps
        )
        pending, self._pending = self._pending, []
        for frame, ticks, _ in pending:
            self._encode_video(frame, ticks)

    def _encode_video(self, frame: Any, ticks: int) -> None:
        writer = self._writer
        assert writer is not None
        pts = ticks
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + self._nominal_ticks
        pts = max(pts, 0)
        self._last_pts = pts
        # Same rule as the library's transcoder (and the muxer's): the first frame at or
        # after each segment boundary is a keyframe, so segments are cut on time.
        is_boundary = self._cutter.starts_segment(pts)
        out = frame.reformat(writer.width, writer.height, format="yuv420p")
        out.pts = pts
        out.time_base = VIDEO_TIME_BASE
        out.pict_type = PictureType.I if is_boundary else PictureType.NONE
        if not self._thumbnail_final:
            # The first frame is a stand-in until one a second in (past any fade-in).
            self._thumbnail = out
            self._thumbnail_final = pts >= _THUMBNAIL_AT * 90_000
        writer.encode_video(out)
        self.frames_encoded += 1

    def _on_audio(self, frame: Any, arrival: float) -> None:
        writer = self._writer
        assert writer is not None and self.started_at is not None
        rate = frame.sample_rate or AUDIO_RATE
        if self._audio_origin is None:
            # Audio and video RTP clocks are unrelated: place the first audio frame by
            # its arrival, relative to the first video frame's.
            self._audio_origin = Fraction(max(0.0, arrival - self.started_at)).limit_denominator(
                AUDIO_RATE
            )
        if frame.pts is not None and frame.time_base is not None:
            offset = self._audio_clock.ticks(int(frame.pts)) * Fraction(frame.time_base)
        else:
            offset = Fraction(arrival - self.started_at) - self._audio_origin
        start = self._audio_origin + offset
        if self._audio_in_next is None:
            self._audio_out_next = round(start * AUDIO_RATE)
        elif start - self._audio_in_next > _AUDIO_GAP:
            # Samples went missing: leave the gap rather than pull later audio early.
            self._audio_out_next += round((start - self._audio_in_next) * AUDIO_RATE)
        self._audio_in_next = start + Fraction(frame.samples, rate)
        key = (frame.format.name, frame.layout.name, rate)
        if self._resampler is None or key != self._resampler_key:
            self._flush_audio()
            self._resampler = new_audio_resampler()
            self._resampler_key = key
        self._encode_audio(self._resampler.resample(frame))

    def _flush_audio(self) -> None:
        if self._resampler is not None:
            self._encode_audio(self._resampler.resample(None))
            self._resampler = None

    def _encode_audio(self, frames: list[Any]) -> None:
        assert self._writer is not None
        for frame in frames:
            frame.pts = self._audio_out_next
            frame.time_base = AUDIO_TIME_BASE
            self._audio_out_next += frame.samples
            self._writer.encode_audio(frame)

    def _close(self) -> Recording | None:
        """Flush and turn the output into an archived video; None if nothing was recorded."""
        if self._writer is None and self._pending:
            self._open()  # a broadcast shorter than the start-up window
        writer = self._writer
        if writer is None:
            shutil.rmtree(self.out_dir, ignore_errors=True)
            return None
        if writer.audio is not None:
            self._flush_audio()
        writer.finish()
        playlist = MediaPlaylist.parse(self.playlist.read_text(encoding="utf-8"))
        if not playlist.segments:
            shutil.rmtree(self.out_dir, ignore_errors=True)
            return None
        playlist.ended = True
        tmp = self.folder / f".{PLAYLIST}.tmp"
        tmp.write_text(playlist.render(), encoding="utf-8")
        os.replace(tmp, self.playlist)
        output = writer.output(RENDITION, self.settings.segment_seconds)
        thumbnail = self._thumbnail
        if thumbnail is not None:
            write_jpeg(thumbnail, self.out_dir / THUMBNAIL, writer.width, writer.height)
        write_master_playlist(self.out_dir, [output])
        size = sum((self.folder / uri).stat().st_size for uri in playlist.uris())
        return Recording(
            duration_seconds=round(playlist.duration, 3),
            width=writer.width,
            height=writer.height,
            size_bytes=size,
            segments=len(playlist.segments),
        )
