"""Received frames -> live HLS (H.264 + AAC in MPEG-TS) with PyAV, in a thread of its own.

The event loop only queues decoded frames; a dedicated thread scales, encodes and muxes
them. Every segment is kept: the playlist the muxer writes lists them all (an EVENT
playlist), viewers get a sliding window of it, and at the end it becomes the archive's
VOD playlist next to a master playlist and a thumbnail, the layout of the video library.
"""

from __future__ import annotations

import math
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import structlog
from av.video.frame import PictureType

from videochat.config import LiveSettings
from videochat.live.playlist import MediaPlaylist
from videochat.live.service import PLAYLIST, RENDITION
from videochat.media.transcode import (
    THUMBNAIL,
    Rendition,
    RenditionOutput,
    _find_sps_codec,
    _measure_bandwidth,
    _write_jpeg,
    _write_master,
    plan_renditions,
)

log = structlog.get_logger(__name__)

_VIDEO_TB = Fraction(1, 90_000)  # RTP's video clock, and MPEG-TS's
_AUDIO_RATE = 48_000
_AUDIO_TB = Fraction(1, _AUDIO_RATE)
_US = 1_000_000
_AUDIO_CODECS = "mp4a.40.2"
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


class _Writer:
    """The HLS muxer with its H.264 (and AAC) stream for one broadcast."""

    def __init__(
        self,
        folder: Path,
        settings: LiveSettings,
        *,
        width: int,
        height: int,
        fps: Fraction,
        with_audio: bool,
    ) -> None:
        self.width, self.height = width, height
        self.codecs: str | None = None
        folder.mkdir(parents=True, exist_ok=True)
        segment_us = round(settings.segment_seconds * _US)
        self.container: Any = av.open(
            str(folder / PLAYLIST),
            "w",
            format="hls",
            options={
                "hls_time": f"{segment_us}us",
                # Keep every segment listed and on disk: the sliding window is cut out
                # when serving, and the full list becomes the archive.
                "hls_list_size": "0",
                "hls_playlist_type": "event",
                # temp_file: a segment only gets its name once it is complete.
                "hls_flags": "independent_segments+temp_file",
                "hls_segment_filename": str(folder / "segment_%05d.ts"),
                # Waiting for a late audio packet must not hold video back for long.
                "max_interleave_delta": "500000",
            },
        )
        pixels = width * height / (1280 * 720)
        bitrate = max(300_000, round(settings.video_bitrate * pixels))
        frames_per_segment = max(1, math.ceil(settings.segment_seconds * fps))
        self.video: Any = self.container.add_stream(
            "libx264",
            rate=fps,
            options={
                "preset": "veryfast",
                # No lookahead and no B-frames: a frame leaves the encoder at once.
                "tune": "zerolatency",
                "forced-idr": "1",
                "x264-params": "scenecut=0",
                "maxrate": str(bitrate * 3 // 2),
                "bufsize": str(bitrate * 2),
            },
        )
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.bit_rate = bitrate
        # Keyframes are forced at every segment start by timestamp; x264's own GOP is
        # only the fallback, two segments long at the measured frame rate.
        self.video.gop_size = frames_per_segment * 2
        self.video.codec_context.time_base = _VIDEO_TB
        self.audio: Any = None
        if with_audio:
            self.audio = self.container.add_stream("aac", rate=_AUDIO_RATE)
            self.audio.codec_context.layout = "stereo"
            self.audio.codec_context.format = "fltp"
            self.audio.bit_rate = settings.audio_bitrate
            self.audio.codec_context.time_base = _AUDIO_TB

    def encode_video(self, frame: Any) -> None:
        for packet in self.video.encode(frame):
            if self.codecs is None:
                extradata = self.video.codec_context.extradata or b""
                self.codecs = _find_sps_codec(bytes(extradata) + bytes(packet))
            self.container.mux(packet)

    def encode_audio(self, frame: Any) -> None:
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        """Flush the encoders and write the trailer (the playlist gets its ENDLIST)."""
        try:
            self.encode_video(None)
            if self.audio is not None:
                self.encode_audio(None)
        finally:
            self.container.close()


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
        self._writer: _Writer | None = None
        self._pending: list[tuple[Any, int, float]] = []
        self._video_clock = _RtpClock()
        self._last_pts: int | None = None
        self._nominal_ticks = 90_000 // 30
        self._next_boundary = 0
        self._segment_us = round(settings.segment_seconds * _US)
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
        if frame.pts is not None and frame.time_base == _VIDEO_TB:
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
        self._writer = _Writer(
            self.folder,
            self.settings,
            width=plan.width,
            height=plan.height,
            fps=fps,
            with_audio=self.with_audio,
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
        is_boundary = pts * _US >= self._next_boundary * self._segment_us * 90_000
        if is_boundary:
            self._next_boundary = pts * _US // (self._segment_us * 90_000) + 1
        out = frame.reformat(writer.width, writer.height, format="yuv420p")
        out.pts = pts
        out.time_base = _VIDEO_TB
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
        rate = frame.sample_rate or _AUDIO_RATE
        if self._audio_origin is None:
            # Audio and video RTP clocks are unrelated: place the first audio frame by
            # its arrival, relative to the first video frame's.
            self._audio_origin = Fraction(max(0.0, arrival - self.started_at)).limit_denominator(
                _AUDIO_RATE
            )
        if frame.pts is not None and frame.time_base is not None:
            offset = self._audio_clock.ticks(int(frame.pts)) * Fraction(frame.time_base)
        else:
            offset = Fraction(arrival - self.started_at) - self._audio_origin
        start = self._audio_origin + offset
        if self._audio_in_next is None:
            self._audio_out_next = round(start * _AUDIO_RATE)
        elif start - self._audio_in_next > _AUDIO_GAP:
            # Samples went missing: leave the gap rather than pull later audio early.
            self._audio_out_next += round((start - self._audio_in_next) * _AUDIO_RATE)
        self._audio_in_next = start + Fraction(frame.samples, rate)
        key = (frame.format.name, frame.layout.name, rate)
        if self._resampler is None or key != self._resampler_key:
            self._flush_audio()
            self._resampler = av.AudioResampler(
                format="fltp", layout="stereo", rate=_AUDIO_RATE, frame_size=1024
            )
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
            frame.time_base = _AUDIO_TB
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
        writer.close()
        playlist = MediaPlaylist.parse(self.playlist.read_text(encoding="utf-8"))
        if not playlist.segments:
            shutil.rmtree(self.out_dir, ignore_errors=True)
            return None
        playlist.ended = True
        tmp = self.folder / f".{PLAYLIST}.tmp"
        tmp.write_text(playlist.render(), encoding="utf-8")
        os.replace(tmp, self.playlist)
        peak, average = _measure_bandwidth(self.playlist, self.settings.segment_seconds)
        codecs = writer.codecs or "avc1.640028"
        if writer.audio is not None:
            codecs = f"{codecs},{_AUDIO_CODECS}"
        output = RenditionOutput(
            name=RENDITION,
            width=writer.width,
            height=writer.height,
            playlist=f"{RENDITION}/{PLAYLIST}",
            bandwidth=peak,
            average_bandwidth=average,
            codecs=codecs,
        )
        thumbnail = self._thumbnail
        if thumbnail is not None:
            _write_jpeg(thumbnail, self.out_dir / THUMBNAIL, writer.width, writer.height)
        _write_master(self.out_dir, [output])
        size = sum((self.folder / uri).stat().st_size for uri in playlist.uris())
        return Recording(
            duration_seconds=round(playlist.duration, 3),
            width=writer.width,
            height=writer.height,
            size_bytes=size,
            segments=len(playlist.segments),
        )
