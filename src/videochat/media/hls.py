"""HLS output shared by the library's transcoder and the live recorder.

One ``HlsWriter`` is an H.264 (+ AAC) encoder pair feeding ffmpeg's HLS muxer for one
rendition; ``SegmentCutter`` places a keyframe at every segment start by the same rule
the muxer cuts by; the rest writes the files around the renditions (master playlist,
thumbnail) and measures them. CPU-bound and synchronous: run it off the event loop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.frame import PictureType

MASTER_PLAYLIST = "master.m3u8"
THUMBNAIL = "thumbnail.jpg"
RENDITION_PLAYLIST = "index.m3u8"
SEGMENT_PATTERN = "segment_%05d.ts"

# MPEG-TS counts time in 90 kHz ticks (so does RTP video); using it as the encoder
# time base means no rounding between our timestamps and what the HLS muxer sees.
VIDEO_TIME_BASE = Fraction(1, 90_000)
AUDIO_RATE = 48_000
AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)
# ffmpeg's hls muxer compares segment boundaries in AV_TIME_BASE (microsecond) units.
MICROSECONDS = 1_000_000
AUDIO_CODECS = "mp4a.40.2"  # AAC-LC, what ffmpeg's native "aac" encoder produces.
FALLBACK_VIDEO_CODECS = "avc1.640028"  # High@4.0: safe upper bound if SPS parsing fails.


@dataclass(frozen=True)
class RenditionOutput:
    """One produced rendition; paths are relative to the output directory.

    bandwidth is the peak segment bitrate (HLS BANDWIDTH), average_bandwidth the mean.
    """

    name: str
    width: int
    height: int
    playlist: str
    bandwidth: int
    average_bandwidth: int
    codecs: str


def microseconds(seconds: float) -> int:
    return round(seconds * MICROSECONDS)


def new_audio_resampler() -> Any:
    """Any decoded audio -> what the AAC encoder takes: 48 kHz stereo fltp, 1024 a frame."""
    return av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE, frame_size=1024)


class SegmentCutter:
    """Says which frames start a segment, so they can be forced to be keyframes.

    The first frame at or after each segment boundary starts one. The comparison
    mirrors the hls muxer's (microseconds against 90 kHz ticks), so the muxer cuts on
    exactly these frames, and identically in every rendition fed the same timestamps.
    """

    def __init__(self, segment_seconds: float) -> None:
        self.segment_us = microseconds(segment_seconds)
        self._next = 0  # index of the next segment start

    def starts_segment(self, ticks: int) -> bool:
        """Whether a frame ``ticks`` (90 kHz) after the first one starts a segment."""
        scale = self.segment_us * VIDEO_TIME_BASE.denominator
        if ticks * MICROSECONDS < self._next * scale:
            return False
        self._next = ticks * MICROSECONDS // scale + 1
        return True


def find_sps_codec(data: bytes) -> str | None:
    """RFC 6381 "avc1.PPCCLL" string from the first H.264 SPS NAL unit in an Annex B packet."""
    index = data.find(b"\x00\x00\x01")
    while index != -1 and index + 6 < len(data):
        header = index + 3
        if data[header] & 0x1F == 7:  # nal_unit_type 7: sequence parameter set
            # profile_idc, constraint flags, level_idc follow the NAL header byte.
            profile, constraints, level = data[header + 1 : header + 4]
            return f"avc1.{profile:02x}{constraints:02x}{level:02x}"
        index = data.find(b"\x00\x00\x01", header)
    return None


class HlsWriter:
    """H.264 (+ AAC) encoders and the HLS muxer writing one rendition into ``folder``.

    ``live`` makes it a live recorder's: an EVENT playlist whose segments only get their
    names once complete, and an encoder that holds no frame back (no lookahead, no
    B-frames). Otherwise a VOD playlist written for the library. Keyframes are forced by
    the caller at segment starts (``SegmentCutter``); x264's own scene cuts are off and
    its GOP is only a fallback, ``gop_segments`` segments long.
    """

    def __init__(
        self,
        folder: Path,
        *,
        width: int,
        height: int,
        frame_rate: Fraction,
        segment_seconds: float,
        video_bitrate: int,
        audio_bitrate: int | None,
        live: bool = False,
        gop_segments: int = 4,
        color: Mapping[str, int] | None = None,
        threads: int | None = None,
    ) -> None:
        self.folder = folder
        self.playlist = folder / RENDITION_PLAYLIST
        self.width, self.height = width, height
        self.video_codecs: str | None = None
        folder.mkdir(parents=True, exist_ok=True)
        options = {
            # Exact microseconds: the same number SegmentCutter places keyframes with.
            "hls_time": f"{microseconds(segment_seconds)}us",
            "hls_playlist_type": "event" if live else "vod",
            # Every segment listed and kept: a live window is cut out when serving.
            "hls_list_size": "0",
            "hls_flags": "independent_segments",
            "hls_segment_filename": str(folder / SEGMENT_PATTERN),
        }
        x264 = {
            "preset": "veryfast",
            # IDR frames where we force keyframes; no scene-cut keyframes of x264's own,
            # which would differ between renditions and make their segments disagree.
            "forced-idr": "1",
            "x264-params": "scenecut=0",
            # Capped VBR: HLS players pick renditions by bandwidth, so bound the peaks.
            "maxrate": str(video_bitrate * 3 // 2),
            "bufsize": str(video_bitrate * 2),
        }
        if threads is not None:
            # x264 defaults to 1.5 threads per core, each with its own lookahead frames.
            x264["threads"] = str(threads)
        if live:
            # temp_file: a segment only gets its name once it is complete.
            options["hls_flags"] += "+temp_file"
            # Waiting for a late audio packet must not hold video back for long.
            options["max_interleave_delta"] = "500000"
            # No lookahead and no B-frames: a frame leaves the encoder at once.
            x264["tune"] = "zerolatency"
        self.container: Any = av.open(str(self.playlist), "w", format="hls", options=options)
        self.video: Any = self.container.add_stream("libx264", rate=frame_rate, options=x264)
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.bit_rate = video_bitrate
        frames_per_segment = max(1, math.ceil(segment_seconds * frame_rate))
        self.video.gop_size = frames_per_segment * gop_segments
        self.video.codec_context.time_base = VIDEO_TIME_BASE
        for attr, value in (color or {}).items():
            setattr(self.video.codec_context, attr, value)
        self.audio: Any = None
        if audio_bitrate is not None:
            self.audio = self.container.add_stream("aac", rate=AUDIO_RATE)
            self.audio.codec_context.layout = "stereo"
            self.audio.codec_context.format = "fltp"
            self.audio.bit_rate = audio_bitrate
            self.audio.codec_context.time_base = AUDIO_TIME_BASE

    @property
    def codecs(self) -> str:
        """The CODECS attribute for the master playlist."""
        video = self.video_codecs or FALLBACK_VIDEO_CODECS
        return f"{video},{AUDIO_CODECS}" if self.audio is not None else video

    def encode_video(self, frame: Any) -> None:
        """Encode and mux a yuv420p frame of the output size (``None`` flushes)."""
        for packet in self.video.encode(frame):
            if self.video_codecs is None:
                # The hls muxer asks for global headers, so the SPS normally sits in the
                # extradata rather than in the first packet; look in both.
                extradata = self.video.codec_context.extradata or b""
                self.video_codecs = find_sps_codec(bytes(extradata) + bytes(packet))
            self.container.mux(packet)

    def encode_audio(self, frame: Any) -> None:
        """Encode and mux a 48 kHz stereo fltp frame (``None`` flushes)."""
        self.container.mux(self.audio.encode(frame))

    def finish(self) -> None:
        """Flush the encoders and write the trailer (the playlist gets its ENDLIST)."""
        try:
            self.encode_video(None)
            if self.audio is not None:
                self.encode_audio(None)
        finally:
            self.container.close()

    def close(self) -> None:
        """Release the files and encoders without flushing (idempotent)."""
        self.container.close()

    def output(self, name: str, segment_seconds: float) -> RenditionOutput:
        """The finished rendition, for the master playlist (``name`` is its folder)."""
        peak, average = measure_bandwidth(self.playlist, segment_seconds)
        return RenditionOutput(
            name=name,
            width=self.width,
            height=self.height,
            playlist=f"{name}/{RENDITION_PLAYLIST}",
            bandwidth=peak,
            average_bandwidth=average,
            codecs=self.codecs,
        )


def measure_bandwidth(playlist: Path, segment_seconds: float) -> tuple[int, int]:
    """Peak and average bits per second of the segments listed in a media playlist."""
    segments: list[tuple[float, int]] = []
    duration: float | None = None
    for line in playlist.read_text(encoding="utf-8").splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append((duration, (playlist.parent / line).stat().st_size))
            duration = None
    if not segments:
        raise RuntimeError(f"HLS muxer wrote no segments to {playlist}")
    total_bits = sum(size for _, size in segments) * 8
    total_seconds = sum(d for d, _ in segments)
    average = total_bits / total_seconds if total_seconds > 0 else 0.0
    # A tiny final segment that starts with a keyframe has an absurd bits/second
    # figure; it would make players shun the rendition, so only full-ish ones count
    # towards the peak (which, per RFC 8216, must not be below the average).
    timed = [(d, size) for d, size in segments if d > 0]
    full = [(d, size) for d, size in timed if d >= segment_seconds / 2] or timed
    peak = max([size * 8 / d for d, size in full] + [average])
    return math.ceil(peak), math.ceil(average)


def write_master_playlist(out_dir: Path, outputs: Sequence[RenditionOutput]) -> None:
    """``master.m3u8`` listing the renditions, written last and atomically."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for out in outputs:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={out.bandwidth},"
            f"AVERAGE-BANDWIDTH={out.average_bandwidth},"
            f"RESOLUTION={out.width}x{out.height},"
            f'CODECS="{out.codecs}"'
        )
        lines.append(out.playlist)
    # Write-then-rename: a reader never sees a half-written master playlist, and its
    # existence means every rendition above is complete.
    tmp = out_dir / f".{MASTER_PLAYLIST}.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / MASTER_PLAYLIST)


def write_jpeg(frame: Any, path: Path, width: int, height: int) -> None:
    """Encode one picture as a JPEG with PyAV's mjpeg encoder (no Pillow needed)."""
    encoder: Any = av.CodecContext.create("mjpeg", "w")
    encoder.width = width
    encoder.height = height
    # yuvj420p is full-range 4:2:0, what baseline JPEG viewers expect.
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 1)
    picture = frame.reformat(width, height, format="yuvj420p", interpolation="BICUBIC")
    picture.pts = 0
    picture.time_base = encoder.time_base
    picture.pict_type = PictureType.NONE
    data = b"".join(bytes(p) for p in [*encoder.encode(picture), *encoder.encode(None)])
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
