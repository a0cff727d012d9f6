"""Transcode an uploaded video into an adaptive HLS ladder (H.264 + AAC in MPEG-TS segments).

CPU-bound and synchronous: callers should run it in a worker thread or process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter
from av.video.frame import PictureType

from videochat.media.errors import MediaRejected
from videochat.media.hls import (
    AUDIO_RATE,
    AUDIO_TIME_BASE,
    MASTER_PLAYLIST,
    MICROSECONDS,
    RENDITION_PLAYLIST,
    THUMBNAIL,
    VIDEO_TIME_BASE,
    HlsWriter,
    RenditionOutput,
    SegmentCutter,
    new_audio_resampler,
    write_jpeg,
    write_master_playlist,
)
from videochat.media.probe import (
    DEFAULT_LIMITS,
    MediaLimits,
    ProbeResult,
    bound_decoder,
    open_untrusted,
    pick_audio_stream,
    pick_video_stream,
    probe_video,
)

__all__ = [
    "DEFAULT_RENDITIONS",
    "MASTER_PLAYLIST",
    "RENDITION_PLAYLIST",
    "THUMBNAIL",
    "PlannedRendition",
    "Rendition",
    "RenditionOutput",
    "TranscodeResult",
    "plan_renditions",
    "transcode_to_hls",
]

_FALLBACK_FPS = Fraction(30)
# The library's renditions never run faster than this: 60 fps sources cost half as much
# to encode, and a phone's 120/240 fps slow motion no more than a 30 fps clip.
DEFAULT_MAX_FRAME_RATE = Fraction(30)
DEFAULT_THREADS = 2
# Phones record "30 fps" as variable rate averaging a little above it: not worth halving.
_RATE_TOLERANCE = Fraction(21, 20)


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
class TranscodeResult:
    """Outcome of transcode_to_hls(); width/height are the source's displayed size."""

    duration_seconds: float
    width: int
    height: int
    renditions: list[RenditionOutput] = field(default_factory=list)
    master_playlist: str = MASTER_PLAYLIST
    thumbnail: str = THUMBNAIL


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
    limits: MediaLimits = DEFAULT_LIMITS,
    max_frame_rate: float | Fraction = DEFAULT_MAX_FRAME_RATE,
    threads: int = DEFAULT_THREADS,
) -> TranscodeResult:
    """Transcode source into HLS renditions, master.m3u8 and thumbnail.jpg under out_dir.

    Raises MediaRejected if the source is not a usable video or exceeds ``limits``.
    Renditions never exceed the source's size, the ladder's top, nor ``max_frame_rate``
    (frames beyond it are dropped before scaling and encoding); every decoder and
    encoder uses at most ``threads`` threads. progress receives values in [0, 1]; an
    exception raised by it aborts the transcode. On any failure out_dir may hold partial
    output; master.m3u8 is written last (atomically), so its presence marks a complete
    result.
    """
    if segment_seconds < 0.1:
        raise ValueError("segment_seconds must be at least 0.1")
    names = [r.name for r in renditions]
    if len(set(names)) != len(names):
        raise ValueError(f"rendition names must be unique: {names}")

    info = probe_video(source, limits)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open_untrusted(source, limits) as container:
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
            limits=limits,
            max_frame_rate=Fraction(max_frame_rate).limit_denominator(1001),
            threads=threads,
        )
        outputs = job.run()

    write_master_playlist(out_dir, outputs)
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
                time_base=frame.time_base or VIDEO_TIME_BASE,
            )
        ]
        nodes += [graph.add(name, args or None) for name, args in self._chain]
        nodes.append(graph.add("buffersink"))
        graph.link_nodes(*nodes).configure()
        return graph


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
    last = (end_pts - boundaries[-1]) * VIDEO_TIME_BASE
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


# AVColorRange: 0 unspecified (read as limited, like swscale does), 1 limited ("tv").
_LIMITED_RANGES = (0, 1)


def _scaled(frame: Any, plan: PlannedRendition) -> Any:
    """The frame at a rendition's size in limited-range yuv420p (itself if it already is)."""
    if (
        (frame.width, frame.height) == (plan.width, plan.height)
        and frame.format.name == "yuv420p"
        and frame.color_range in _LIMITED_RANGES
    ):
        # A range "conversion" from unspecified to limited is a copy of every pixel.
        return frame
    return frame.reformat(
        plan.width,
        plan.height,
        format="yuv420p",
        interpolation="BICUBIC",
        dst_color_range="MPEG",
    )


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
        limits: MediaLimits,
        max_frame_rate: Fraction,
        threads: int,
    ) -> None:
        self.container = container
        self.video = video
        self.audio = audio
        self.info = info
        self.plans = plans
        self.out_dir = out_dir
        self.segment_seconds = segment_seconds
        self.progress = progress
        self.limits = limits
        self.threads = threads
        self.rotator = _Rotator(info.rotation)

        rate = video.average_rate or video.guessed_rate or _FALLBACK_FPS
        self.frame_rate = Fraction(rate).limit_denominator(1001)
        # Fallback spacing for frames whose timestamp is missing or goes backwards.
        self.nominal_ticks = max(1, round(1 / (self.frame_rate * VIDEO_TIME_BASE)))
        # Output frame rate: the source's, or for a faster source an even fraction of it
        # within the cap (60 -> 30, 50 -> 25, 120 -> 30: a steady cadence, no judder).
        self.output_rate = self.frame_rate
        self.thin_to: Fraction | None = None
        self.thin_slack = Fraction(0)
        if self.frame_rate > max_frame_rate * _RATE_TOLERANCE:
            step = math.ceil(self.frame_rate / max_frame_rate)
            self.output_rate = self.thin_to = self.frame_rate / step
            # Half a source frame of slack: timestamps in milliseconds (WebM, FLV) may
            # put a frame a tick before its interval starts.
            self.thin_slack = Fraction(1, 2 * step)
        self.last_slot: int | None = None
        self.output_ticks = max(1, round(1 / (self.output_rate * VIDEO_TIME_BASE)))
        self.frames_decoded = 0
        # Timeline origin: the container's start, so audio and video keep their offset.
        self.origin: Fraction | None = (
            Fraction(container.start_time, MICROSECONDS)
            if container.start_time is not None
            else None
        )
        self.cutter = SegmentCutter(segment_seconds)

        self.last_video_pts: int | None = None
        self.first_video_pts: int | None = None
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

        self.writers: list[tuple[PlannedRendition, HlsWriter]] = []

    def run(self) -> list[RenditionOutput]:
        """Encode everything and return the finished renditions."""
        # Allow frame threading on top of slice threading: decoders without slices
        # (most camera H.264/HEVC) would otherwise decode on a single core. Bounded:
        # every frame thread holds frames of its own.
        bound_decoder(self.video, self.limits, threads=self.threads)
        self.video.codec_context.thread_type = "AUTO"
        color = self._color_tags()
        try:
            for plan in self.plans:
                writer = HlsWriter(
                    self.out_dir / plan.rendition.name,
                    width=plan.width,
                    height=plan.height,
                    frame_rate=self.output_rate,
                    segment_seconds=self.segment_seconds,
                    video_bitrate=plan.rendition.video_bitrate,
                    audio_bitrate=(
                        plan.rendition.audio_bitrate if self.audio is not None else None
                    ),
                    # A long GOP: x264 must not insert keyframes of its own between ours.
                    gop_segments=4,
                    color=color,
                    threads=self.threads,
                )
                self.writers.append((plan, writer))
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
            write_jpeg(thumb, self.out_dir / THUMBNAIL, smallest.width, smallest.height)
            for _, writer in self.writers:
                writer.finish()
        finally:
            for _, writer in self.writers:
                # close() is idempotent in PyAV; on error this releases files and encoders.
                writer.close()
        for _, writer in self.writers:
            _fix_last_segment_duration(writer.playlist, self.boundaries, self.video_end)
        return [
            writer.output(plan.rendition.name, self.segment_seconds)
            for plan, writer in self.writers
        ]

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
        pts = round(seconds / VIDEO_TIME_BASE) if seconds is not None else None
        if pts is None or (self.last_video_pts is not None and pts <= self.last_video_pts):
            # Missing or non-increasing timestamp: place it one nominal frame later.
            pts = 0 if self.last_video_pts is None else self.last_video_pts + self.nominal_ticks
        pts = max(pts, 0)
        self.last_video_pts = pts
        if self.first_video_pts is None:
            self.first_video_pts = pts
        rel_ticks = pts - self.first_video_pts
        self._check_budget(frame, rel_ticks)

        duration = 0
        if frame.duration and frame.time_base:
            duration = round(frame.duration * frame.time_base / VIDEO_TIME_BASE)
        duration = duration or self.nominal_ticks
        self.video_end = pts + duration
        if not self._keep(rel_ticks):
            return
        duration = max(duration, self.output_ticks)

        # Force a keyframe on the first frame at or after each segment boundary: the
        # muxer cuts exactly on these frames, identically in every rendition.
        is_boundary = self.cutter.starts_segment(rel_ticks)
        if is_boundary:
            self.boundaries.append(pts)

        upright = self.rotator(frame)
        rel_seconds = float(rel_ticks * VIDEO_TIME_BASE)
        if self.thumb_frame is None and rel_seconds >= self.thumb_at:
            self.thumb_frame = upright
        self.last_frame = upright

        for plan, writer in self.writers:
            out = _scaled(upright, plan)
            # reformat() may hand back the very same frame when nothing changes, so set
            # every field each time rather than relying on what a previous writer left.
            out.pts = pts
            out.time_base = VIDEO_TIME_BASE
            out.duration = duration
            # Decoded frames carry the source's picture types; clear them so only our
            # boundary frames become keyframes.
            out.pict_type = PictureType.I if is_boundary else PictureType.NONE
            writer.encode_video(out)
        self.frames_encoded += 1
        self._report(rel_seconds)

    def _check_budget(self, frame: Any, rel_ticks: int) -> None:
        """Stop a source that turns out bigger than its headers said (and the probe saw)."""
        self.frames_decoded += 1
        self.limits.check_size(frame.width, frame.height)
        elapsed = float(rel_ticks * VIDEO_TIME_BASE)
        self.limits.check_duration(elapsed)
        # Timestamps packed closer than the frame-rate limit allows (decoding is paid
        # per frame): a second of slack for the first frames' jitter.
        if self.frames_decoded > self.limits.max_frame_rate * (elapsed + 1.0):
            raise MediaRejected(
                f"the video has more frames than its length allows (at most "
                f"{self.limits.max_frame_rate:g} frames per second are accepted)"
            )

    def _keep(self, rel_ticks: int) -> bool:
        """Whether a frame is encoded: the first one in each output frame interval."""
        if self.thin_to is None:
            return True
        slot = math.floor(rel_ticks * VIDEO_TIME_BASE * self.thin_to + self.thin_slack)
        if self.last_slot is not None and slot <= self.last_slot:
            return False
        self.last_slot = slot
        return True

    def _on_audio(self, frame: Any) -> None:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.resampler is None or key != self.resampler_key:
            # A mid-stream change of sample format/layout/rate needs a fresh resampler.
            self._flush_audio()
            self.resampler = new_audio_resampler()
            self.resampler_key = key
        if self.audio_next_pts is None:
            seconds = self._relative(frame.pts, frame.time_base)
            start = round(seconds * AUDIO_RATE) if seconds is not None else 0
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
            frame.time_base = AUDIO_TIME_BASE
            frame.duration = frame.samples
            self.audio_next_pts += frame.samples
            for _, writer in self.writers:
                writer.encode_audio(frame)

    def _report(self, seconds: float) -> None:
        if self.progress is None or self.info.duration_seconds <= 0:
            return
        # Capped below 1.0: 1.0 is reported once the master playlist exists.
        fraction = min(seconds / self.info.duration_seconds, 0.99)
        if fraction - self.reported >= 0.01:
            self.reported = fraction
            self.progress(fraction)
