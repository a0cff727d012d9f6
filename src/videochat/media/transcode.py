"""Transcode an uploaded video into an adaptive HLS ladder (H.264 + AAC in MPEG-TS segments).

CPU-bound and synchronous: callers should run it in a worker thread or process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter
from av.video.frame import PictureType

from videochat.media.errors import MediaRejected
from videochat.media.probe import (
    ProbeResult,
    open_untrusted,
    pick_audio_stream,
    pick_video_stream,
    probe_video,
)

MASTER_PLAYLIST = "master.m3u8"
THUMBNAIL = "thumbnail.jpg"
RENDITION_PLAYLIST = "index.m3u8"

# MPEG-TS counts time in 90 kHz ticks; using it as the encoder time base means no
# rounding between what we compute here and what the HLS muxer sees.
_VIDEO_TB = Fraction(1, 90_000)
_AUDIO_RATE = 48_000
_AUDIO_TB = Fraction(1, _AUDIO_RATE)
# ffmpeg's hls muxer compares segment boundaries in AV_TIME_BASE (microsecond) units.
_US = 1_000_000
_FALLBACK_FPS = Fraction(30)
_AUDIO_CODECS = "mp4a.40.2"  # AAC-LC, what ffmpeg's native "aac" encoder produces.
_FALLBACK_VIDEO_CODECS = "avc1.640028"  # High@4.0: safe upper bound if SPS parsing fails.


@dataclass(frozen=True)
class Rendition:
    """One rung of the quality ladder.

    ``height`` is the length of the picture's *short side*: a 720 rendition of a
    landscape source is 1280x720, of a portrait (9:16) source 720x1280. The long side
    follows the source aspect ratio. Bitrates are in bits per second.
    """

    name: str
    height: int
    video_bitrate: int
    audio_bitrate: int

    def __post_init__(self) -> None:
        # libx264 with yuv420p needs even dimensions (chroma is subsampled 2x2).
        if self.height < 2 or self.height % 2:
            raise ValueError(f"rendition height must be even and >= 2, got {self.height}")
        if self.video_bitrate <= 0 or self.audio_bitrate <= 0:
            raise ValueError("rendition bitrates must be positive")


DEFAULT_RENDITIONS: tuple[Rendition, ...] = (
    Rendition("360p", 360, 800_000, 96_000),
    Rendition("720p", 720, 2_800_000, 128_000),
)


@dataclass(frozen=True)
class PlannedRendition:
    """A rendition resolved against a concrete source: output size in pixels."""

    rendition: Rendition
    width: int
    height: int


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


@dataclass(frozen=True)
class TranscodeResult:
    """Outcome of transcode_to_hls(); width/height are the source's displayed size."""

    duration_seconds: float
    width: int
    height: int
    renditions: list[RenditionOutput] = field(default_factory=list)
    master_playlist: str = MASTER_PLAYLIST
    thumbnail: str = THUMBNAIL


def _microseconds(seconds: float) -> int:
    return round(seconds * _US)


def _even_floor(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _even_round(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_renditions(
    width: int, height: int, renditions: Sequence[Rendition] = DEFAULT_RENDITIONS
) -> list[PlannedRendition]:
    """Choose output sizes for a width x height (displayed) source without ever upscaling."""
    if not renditions:
        raise ValueError("at least one rendition is required")
    short, long_ = min(width, height), max(width, height)
    ladder = sorted(renditions, key=lambda r: r.height)
    chosen = [r for r in ladder if r.height <= short]
    if not chosen:
        # Source below the whole ladder: one rendition at its own size (rounded down to
        # even, so never more pixels than the source), bitrates of the lowest rung.
        own = _even_floor(short)
        chosen = [replace(ladder[0], name=f"{own}p", height=own)]
    planned = []
    for r in chosen:
        # Round the long side to even, but never past the source's own long side.
        other = min(_even_round(long_ * r.height / short), _even_floor(long_))
        if width >= height:
            planned.append(PlannedRendition(r, other, r.height))
        else:
            planned.append(PlannedRendition(r, r.height, other))
    return planned


def transcode_to_hls(
    source: Path,
    out_dir: Path,
    *,
    segment_seconds: float = 4.0,
    renditions: Sequence[Rendition] = DEFAULT_RENDITIONS,
    progress: Callable[[float], None] | None = None,
) -> TranscodeResult:
    """Transcode source into HLS renditions, master.m3u8 and thumbnail.jpg under out_dir.

    Raises MediaRejected if the source is not a usable video. progress receives values
    in [0, 1]; an exception raised by it aborts the transcode. On any failure out_dir may
    hold partial output; master.m3u8 is written last (atomically), so its presence marks
    a complete result.
    """
    if segment_seconds < 0.1:
        raise ValueError("segment_seconds must be at least 0.1")
    names = [r.name for r in renditions]
    if len(set(names)) != len(names):
        raise ValueError(f"rendition names must be unique: {names}")

    info = probe_video(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open_untrusted(source) as container:
        video = pick_video_stream(container)
        audio = pick_audio_stream(container)
        if video is None:  # probe_video() already checked; the file changed under us
            raise MediaRejected("the file has no video track")
        width, height = _display_size(video, info)
        plans = plan_renditions(width, height, renditions)
        job = _Job(
            container=container,
            video=video,
            audio=audio,
            info=info,
            plans=plans,
            out_dir=out_dir,
            segment_seconds=segment_seconds,
            progress=progress,
        )
        outputs = job.run()

    _write_master(out_dir, outputs)
    if progress is not None:
        progress(1.0)
    return TranscodeResult(
        duration_seconds=info.duration_seconds,
        width=width,
        height=height,
        renditions=outputs,
    )


def _display_size(video: Any, info: ProbeResult) -> tuple[int, int]:
    """Displayed size: coded size stretched by a non-square pixel aspect, then rotated."""
    coded_w, coded_h = video.codec_context.width, video.codec_context.height
    if not coded_w or not coded_h:
        return info.width, info.height
    sar = video.codec_context.sample_aspect_ratio
    display_w = coded_w * float(sar) if sar and sar > 0 else float(coded_w)
    w, h = round(display_w), coded_h
    return (h, w) if info.rotation in (90, 270) else (w, h)


class _Rotator:
    """Turns decoded pictures upright according to the display rotation (ffmpeg filters)."""

    # Counter-clockwise display rotation -> filter chain that bakes it into the pixels.
    _CHAINS: dict[int, tuple[tuple[str, str], ...]] = {
        90: (("transpose", "cclock"),),
        180: (("hflip", ""), ("vflip", "")),
        270: (("transpose", "clock"),),
    }

    def __init__(self, rotation: int) -> None:
        self._chain = self._CHAINS.get(rotation, ())
        self._graph: Any = None

    def __call__(self, frame: Any) -> Any:
        if not self._chain:
            return frame
        if self._graph is None:
            self._graph = self._build(frame)
        self._graph.vpush(frame)
        return self._graph.vpull()

    def _build(self, frame: Any) -> Any:
        graph = av.filter.Graph()
        nodes = [
            graph.add_buffer(
                width=frame.width,
                height=frame.height,
                format=frame.format,
                time_base=frame.time_base or _VIDEO_TB,
            )
        ]
        nodes += [graph.add(name, args or None) for name, args in self._chain]
        nodes.append(graph.add("buffersink"))
        graph.link_nodes(*nodes).configure()
        return graph


def _find_sps_codec(data: bytes) -> str | None:
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


class _RenditionWriter:
    """Encoder + HLS muxer for one rendition."""

    def __init__(
        self,
        plan: PlannedRendition,
        out_dir: Path,
        *,
        segment_seconds: float,
        frame_rate: Fraction,
        with_audio: bool,
        color: dict[str, int],
    ) -> None:
        self.plan = plan
        self.dir = out_dir / plan.rendition.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.codecs: str | None = None
        self.container: Any = av.open(
            str(self.dir / RENDITION_PLAYLIST),
            "w",
            format="hls",
            options={
                # Exact microseconds: the same number _Job places keyframes with.
                "hls_time": f"{_microseconds(segment_seconds)}us",
                "hls_playlist_type": "vod",
                "hls_list_size": "0",
                "hls_flags": "independent_segments",
                "hls_segment_filename": str(self.dir / "segment_%05d.ts"),
            },
        )
        bitrate = plan.rendition.video_bitrate
        frames_per_segment = max(1, math.ceil(segment_seconds * frame_rate))
        self.video: Any = self.container.add_stream(
            "libx264",
            rate=frame_rate,
            options={
                "preset": "veryfast",
                # We force a keyframe at every segment start (see _Job). Make those IDR
                # frames and switch off x264's own scene-cut keyframes, which differ
                # between resolutions and would make the renditions' segments disagree.
                "forced-idr": "1",
                "x264-params": "scenecut=0",
                # Capped VBR: HLS players pick renditions by bandwidth, so bound the peaks.
                "maxrate": str(bitrate * 3 // 2),
                "bufsize": str(bitrate * 2),
            },
        )
        self.video.width = plan.width
        self.video.height = plan.height
        self.video.pix_fmt = "yuv420p"
        self.video.bit_rate = bitrate
        # A long GOP: x264 must not insert keyframes of its own between ours.
        self.video.gop_size = frames_per_segment * 4
        self.video.codec_context.time_base = _VIDEO_TB
        for attr, value in color.items():
            setattr(self.video.codec_context, attr, value)

        self.audio: Any = None
        if with_audio:
            self.audio = self.container.add_stream("aac", rate=_AUDIO_RATE)
            self.audio.codec_context.layout = "stereo"
            self.audio.codec_context.format = "fltp"
            self.audio.bit_rate = plan.rendition.audio_bitrate
            self.audio.codec_context.time_base = _AUDIO_TB

    def encode_video(self, frame: Any) -> None:
        for packet in self.video.encode(frame):
            if self.codecs is None:
                # The hls muxer asks for global headers, so the SPS normally sits in the
                # extradata rather than in the first packet; look in both.
                extradata = self.video.codec_context.extradata or b""
                self.codecs = _find_sps_codec(bytes(extradata) + bytes(packet))
            self.container.mux(packet)

    def encode_audio(self, frame: Any) -> None:
        self.container.mux(self.audio.encode(frame))

    def finish(self) -> None:
        self.encode_video(None)
        if self.audio is not None:
            self.encode_audio(None)
        self.container.close()

    def output(self, segment_seconds: float) -> RenditionOutput:
        peak, average = _measure_bandwidth(self.dir / RENDITION_PLAYLIST, segment_seconds)
        video_codecs = self.codecs or _FALLBACK_VIDEO_CODECS
        return RenditionOutput(
            name=self.plan.rendition.name,
            width=self.plan.width,
            height=self.plan.height,
            playlist=f"{self.plan.rendition.name}/{RENDITION_PLAYLIST}",
            bandwidth=peak,
            average_bandwidth=average,
            codecs=f"{video_codecs},{_AUDIO_CODECS}" if self.audio is not None else video_codecs,
        )


def _measure_bandwidth(playlist: Path, segment_seconds: float) -> tuple[int, int]:
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


def _fix_last_segment_duration(playlist: Path, boundaries: list[int], end_pts: int) -> None:
    """Correct the final #EXTINF, which ffmpeg's hls muxer underestimates.

    The muxer measures the last segment up to the pts of the last packet it received;
    with B-frames that packet is not the last one displayed, and the final frame's own
    duration is never added, so the playlist came out up to a few frames short. Every
    earlier #EXTINF is exact: it spans two of our forced keyframes.
    """
    lines = playlist.read_text(encoding="utf-8").splitlines()
    extinf = [i for i, line in enumerate(lines) if line.startswith("#EXTINF:")]
    if not boundaries or len(extinf) != len(boundaries):
        # Segments not cut where we forced keyframes: leave ffmpeg's figures alone
        # rather than attribute our timing to the wrong segment.
        return
    last = (end_pts - boundaries[-1]) * _VIDEO_TB
    lines[extinf[-1]] = f"#EXTINF:{float(last):.6f},"
    longest = max(
        float(line[len("#EXTINF:") :].split(",")[0]) for line in (lines[i] for i in extinf)
    )
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-TARGETDURATION:"):
            # RFC 8216: every EXTINF rounded to an integer must not exceed the target.
            target = max(int(line.split(":", 1)[1]), math.floor(longest + 0.5))
            lines[i] = f"#EXT-X-TARGETDURATION:{target}"
    playlist.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_master(out_dir: Path, outputs: Sequence[RenditionOutput]) -> None:
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


def _write_jpeg(frame: Any, path: Path, width: int, height: int) -> None:
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


class _Job:
    """Decode the source once and feed every rendition from the same frames."""

    def __init__(
        self,
        *,
        container: Any,
        video: Any,
        audio: Any | None,
        info: ProbeResult,
        plans: list[PlannedRendition],
        out_dir: Path,
        segment_seconds: float,
        progress: Callable[[float], None] | None,
    ) -> None:
        self.container = container
        self.video = video
        self.audio = audio
        self.info = info
        self.plans = plans
        self.out_dir = out_dir
        self.segment_seconds = segment_seconds
        self.progress = progress
        self.rotator = _Rotator(info.rotation)

        rate = video.average_rate or video.guessed_rate or _FALLBACK_FPS
        self.frame_rate = Fraction(rate).limit_denominator(1001)
        # Fallback spacing for frames whose timestamp is missing or goes backwards.
        self.nominal_ticks = max(1, round(1 / (self.frame_rate * _VIDEO_TB)))
        # Timeline origin: the container's start, so audio and video keep their offset.
        self.origin: Fraction | None = (
            Fraction(container.start_time, _US) if container.start_time is not None else None
        )
        self.segment_us = _microseconds(segment_seconds)

        self.last_video_pts: int | None = None
        self.first_video_pts: int | None = None
        self.next_boundary = 0  # index of the next segment start to force a keyframe at
        self.frames_encoded = 0
        # Where each segment starts (pts of the forced keyframes) and where the video ends.
        self.boundaries: list[int] = []
        self.video_end = 0

        self.thumb_at = min(info.duration_seconds * 0.1, 1.0)
        self.thumb_frame: Any = None
        self.last_frame: Any = None
        self.reported = -1.0

        self.resampler: Any = None
        self.resampler_key: tuple[str, str, int] | None = None
        self.audio_next_pts: int | None = None

        self.writers: list[_RenditionWriter] = []

    def run(self) -> list[RenditionOutput]:
        """Encode everything and return the finished renditions."""
        # Allow frame threading on top of slice threading: decoders without slices
        # (most camera H.264/HEVC) would otherwise decode on a single core.
        self.video.codec_context.thread_type = "AUTO"
        color = self._color_tags()
        try:
            for plan in self.plans:
                self.writers.append(
                    _RenditionWriter(
                        plan,
                        self.out_dir,
                        segment_seconds=self.segment_seconds,
                        frame_rate=self.frame_rate,
                        with_audio=self.audio is not None,
                        color=color,
                    )
                )
            for frame in self._decoded_frames():
                if isinstance(frame, av.VideoFrame):
                    self._on_video(frame)
                else:
                    self._on_audio(frame)
            self._flush_audio()
            if self.frames_encoded == 0:
                raise MediaRejected("the video could not be decoded: no picture could be read")
            thumb = self.thumb_frame if self.thumb_frame is not None else self.last_frame
            smallest = self.plans[0]
            _write_jpeg(thumb, self.out_dir / THUMBNAIL, smallest.width, smallest.height)
            for writer in self.writers:
                writer.finish()
        finally:
            for writer in self.writers:
                # close() is idempotent in PyAV; on error this releases files and encoders.
                writer.container.close()
        for writer in self.writers:
            _fix_last_segment_duration(
                writer.dir / RENDITION_PLAYLIST, self.boundaries, self.video_end
            )
        return [writer.output(self.segment_seconds) for writer in self.writers]

    def _color_tags(self) -> dict[str, int]:
        # Keep the source's colour description so e.g. BT.709 HD material scaled to SD
        # is not re-interpreted as BT.601 by players. 2 = "unspecified" in ffmpeg.
        cc = self.video.codec_context
        tags = {
            name: getattr(cc, name)
            for name in ("colorspace", "color_primaries", "color_trc")
            if getattr(cc, name, 2) not in (0, 2)
        }
        tags["color_range"] = 1  # we always write limited ("tv") range yuv420p
        return tags

    def _decoded_frames(self) -> Iterator[Any]:
        """Yield decoded audio and video frames, turning ffmpeg errors into MediaRejected."""
        streams = [self.video] if self.audio is None else [self.video, self.audio]
        packets = self.container.demux(*streams)
        while True:
            try:
                packet = next(packets)
                frames = packet.decode()
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                raise MediaRejected(
                    "the video could not be decoded: its data is corrupt or incomplete"
                ) from exc
            yield from frames

    def _relative(self, pts: int | None, time_base: Fraction | None) -> Fraction | None:
        """Seconds since the timeline origin, or None if the frame has no timestamp."""
        if pts is None or time_base is None:
            return None
        seconds = pts * time_base
        if self.origin is None:
            self.origin = seconds
        return seconds - self.origin

    def _on_video(self, frame: Any) -> None:
        seconds = self._relative(frame.pts, frame.time_base)
        pts = round(seconds / _VIDEO_TB) if seconds is not None else None
        if pts is None or (self.last_video_pts is not None and pts <= self.last_video_pts):
            # Missing or non-increasing timestamp: place it one nominal frame later.
            pts = 0 if self.last_video_pts is None else self.last_video_pts + self.nominal_ticks
        pts = max(pts, 0)
        self.last_video_pts = pts
        if self.first_video_pts is None:
            self.first_video_pts = pts
        rel_ticks = pts - self.first_video_pts

        # Force a keyframe on the first frame at or after each segment boundary. The
        # comparison mirrors the hls muxer's (microseconds vs. stream ticks), so it cuts
        # exactly on these frames, and identically in every rendition.
        is_boundary = (
            rel_ticks * _US >= self.next_boundary * self.segment_us * _VIDEO_TB.denominator
        )
        if is_boundary:
            self.boundaries.append(pts)
            self.next_boundary = rel_ticks * _US // (self.segment_us * _VIDEO_TB.denominator) + 1

        duration = 0
        if frame.duration and frame.time_base:
            duration = round(frame.duration * frame.time_base / _VIDEO_TB)
        duration = duration or self.nominal_ticks
        self.video_end = pts + duration

        upright = self.rotator(frame)
        rel_seconds = float(rel_ticks * _VIDEO_TB)
        if self.thumb_frame is None and rel_seconds >= self.thumb_at:
            self.thumb_frame = upright
        self.last_frame = upright

        for writer in self.writers:
            out = upright.reformat(
                writer.plan.width,
                writer.plan.height,
                format="yuv420p",
                interpolation="BICUBIC",
                dst_color_range="MPEG",
            )
            # reformat() may hand back the very same frame when nothing changes, so set
            # every field each time rather than relying on what a previous writer left.
            out.pts = pts
            out.time_base = _VIDEO_TB
            out.duration = duration
            # Decoded frames carry the source's picture types; clear them so only our
            # boundary frames become keyframes.
            out.pict_type = PictureType.I if is_boundary else PictureType.NONE
            writer.encode_video(out)
        self.frames_encoded += 1
        self._report(rel_seconds)

    def _on_audio(self, frame: Any) -> None:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.resampler is None or key != self.resampler_key:
            # A mid-stream change of sample format/layout/rate needs a fresh resampler.
            self._flush_audio()
            self.resampler = av.AudioResampler(
                format="fltp", layout="stereo", rate=_AUDIO_RATE, frame_size=1024
            )
            self.resampler_key = key
        if self.audio_next_pts is None:
            seconds = self._relative(frame.pts, frame.time_base)
            start = round(seconds * _AUDIO_RATE) if seconds is not None else 0
            self.audio_next_pts = max(0, start)
        self._encode_audio(self.resampler.resample(frame))

    def _flush_audio(self) -> None:
        if self.resampler is not None:
            self._encode_audio(self.resampler.resample(None))
            self.resampler = None

    def _encode_audio(self, frames: list[Any]) -> None:
        for frame in frames:
            # Timestamps by sample count: continuous audio by construction, immune to
            # jittery or missing source timestamps (at the cost of ignoring real gaps).
            assert self.audio_next_pts is not None
            frame.pts = self.audio_next_pts
            frame.time_base = _AUDIO_TB
            frame.duration = frame.samples
            self.audio_next_pts += frame.samples
            for writer in self.writers:
                writer.encode_audio(frame)

    def _report(self, seconds: float) -> None:
        if self.progress is None or self.info.duration_seconds <= 0:
            return
        # Capped below 1.0: 1.0 is reported once the master playlist exists.
        fraction = min(seconds / self.info.duration_seconds, 0.99)
        if fraction - self.reported >= 0.01:
            self.reported = fraction
            self.progress(fraction)
