"""Inspect an uploaded file with PyAV and decide whether it is a usable video."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from videochat.media.errors import MediaRejected

if TYPE_CHECKING:
    from videochat.config import MediaSettings

# How many leading bytes sniff_is_media_container() wants: MPEG-TS needs a few
# 188/192-byte packets to be told apart from random data; everything else needs 12.
SNIFF_BYTES = 1024

# Demuxers ffmpeg may use on an upload. Besides defining what we accept, this keeps
# ffmpeg's playlist-like demuxers (hls, concat, ...) away from untrusted files: they can
# be abused to make the server read local files or fetch URLs while "probing a video".
ALLOWED_DEMUXERS = (
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "3g2",
    "mj2",
    "matroska",
    "webm",
    "avi",
    "mpegts",
    "ogg",
    "flv",
)

# protocol_whitelist=file: a container must never make us open network URLs.
_OPEN_OPTIONS = {
    "format_whitelist": ",".join(ALLOWED_DEMUXERS),
    "protocol_whitelist": "file",
}

REASON_IMAGE = "this is an image, not a video"
REASON_NO_VIDEO = "the file has no video track"
REASON_TRUNCATED = "the video file is damaged or incomplete (was the upload cut short?)"
REASON_UNKNOWN_FORMAT = (
    "not a video file: the format was not recognised "
    "(accepted: MP4/MOV, WebM/MKV, AVI, MPEG-TS, Ogg, FLV)"
)

# Decoding this many frames proves the codec works and the data is not garbage, while
# keeping the probe of a large upload well under a second.
_START_FRAMES = 5
_START_PACKET_BUDGET = 300
# Anything shorter than this is a still picture wrapped in a container, not a video.
_MIN_DURATION_SECONDS = 0.1
# The end check demuxes (without decoding) this much of the tail of the file.
_END_WINDOW_SECONDS = 3.0
_MIN_END_TOLERANCE_SECONDS = 0.5

# ISO-BMFF major brands of still images (HEIC/AVIF photos share MP4's "ftyp" box).
_IMAGE_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)
# Top-level QuickTime atoms that old .mov files may start with instead of "ftyp".
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


@dataclass(frozen=True)
class MediaLimits:
    """The most an upload may ask of the server; checked from its headers before decoding.

    A file of a megabyte can declare a 16000x16000 picture (each decoded frame then
    takes hundreds of megabytes) or hours at a high frame rate: what costs memory and
    CPU is what the headers announce, not the upload's size.
    """

    max_side: int = 4096
    max_pixels: int = 4096 * 2160
    max_seconds: float = 3 * 3600
    max_frame_rate: float = 120.0
    max_streams: int = 16

    @classmethod
    def from_settings(cls, media: MediaSettings) -> MediaLimits:
        """The limits configured in ``VIDEOCHAT_MEDIA__MAX_VIDEO_*``."""
        return cls(
            max_side=media.max_video_side,
            max_pixels=media.max_video_pixels,
            max_seconds=media.max_video_seconds,
            max_frame_rate=media.max_video_frame_rate,
            max_streams=media.max_video_streams,
        )

    def check_size(self, width: int, height: int) -> None:
        """Refuse a picture larger than the limits."""
        if max(width, height) > self.max_side or width * height > self.max_pixels:
            raise MediaRejected(
                f"the video's picture is too large ({width}x{height}); the largest accepted "
                f"is {self.max_side} pixels on a side and {self.max_pixels:,} pixels in all"
            )

    def check_duration(self, seconds: float) -> None:
        """Refuse a video longer than the limit."""
        if seconds > self.max_seconds:
            raise MediaRejected(
                f"the video is too long ({_clock(seconds)}); the longest accepted is "
                f"{_clock(self.max_seconds)}"
            )

    def check_frame_rate(self, fps: float) -> None:
        """Refuse a frame rate above the limit."""
        if fps > self.max_frame_rate:
            raise MediaRejected(
                f"the video's frame rate is too high ({fps:.0f} frames per second); the "
                f"highest accepted is {self.max_frame_rate:g}"
            )


DEFAULT_LIMITS = MediaLimits()


def _clock(seconds: float) -> str:
    """A length for people: "42.0 s" under a minute, else "1:05:00"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass(frozen=True)
class ProbeResult:
    """What probe_video() learnt about a usable video.

    width/height are the *displayed* size: already swapped when the file carries a
    90/270 degree rotation. rotation is the counter-clockwise display rotation in
    degrees (0, 90, 180 or 270) that a player, or our transcoder, has to apply.
    format_name is ffmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
    """

    duration_seconds: float
    width: int
    height: int
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    frame_rate: float
    format_name: str
    rotation: int = 0


def sniff_is_media_container(first_bytes: bytes) -> bool:
    """Tell from the first SNIFF_BYTES bytes of a file whether it is a container we accept."""
    head = first_bytes
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12] not in _IMAGE_BRANDS
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        # A real atom header has a size of at least its own 8 bytes (1 = 64-bit size).
        size = int.from_bytes(head[:4], "big")
        return size == 1 or size >= 8
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska / WebM
        return True
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return True
    if head.startswith(b"OggS"):
        return True
    if head.startswith(b"FLV\x01"):
        return True
    return _looks_like_mpegts(head)


def _looks_like_mpegts(head: bytes) -> bool:
    # Plain TS has a 0x47 sync byte every 188 bytes; M2TS/AVCHD (.mts) prefixes each
    # packet with a 4-byte timecode, so the sync byte recurs every 192 bytes from 4.
    for packet_size, first in ((188, 0), (192, 4)):
        positions = list(range(first, len(head), packet_size))[:4]
        if len(positions) >= 2 and all(head[p] == 0x47 for p in positions):
            return True
    return False


def _looks_like_image(head: bytes) -> bool:
    return (
        head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith(b"\xff\xd8\xff")  # JPEG
        or head.startswith((b"GIF87a", b"GIF89a"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or head.startswith((b"II*\x00", b"MM\x00*"))  # TIFF
        or (head[:2] == b"BM" and head[6:10] == b"\x00\x00\x00\x00")  # BMP: reserved zeros
        or (head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS)
    )


def _looks_like_audio(head: bytes) -> bool:
    return (
        head.startswith((b"ID3", b"fLaC", b"#!AMR", b"MAC ", b"wvpk", b"caff"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WAVE")
        # MPEG audio / ADTS AAC frame sync: 11 set bits.
        or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
    )


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    # Cut at most 3 trailing bytes: the sniff window may split a UTF-8 sequence.
    for cut in range(4):
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        printable = sum(ch.isprintable() or ch in "\r\n\t\f" for ch in text)
        return printable >= 0.95 * len(text)
    return False


def _describe_unopenable(head: bytes) -> str:
    """Explain, for a person, why ffmpeg (restricted to our demuxers) could not open a file."""
    if _looks_like_image(head):
        return REASON_IMAGE
    if _looks_like_audio(head):
        return f"{REASON_NO_VIDEO} (it looks like an audio file)"
    if sniff_is_media_container(head):
        # The magic bytes say video but the container does not parse: typically an MP4
        # whose index ("moov" atom, written last) never arrived.
        return REASON_TRUNCATED
    if _looks_like_text(head):
        return "not a video file: it looks like a text document"
    return REASON_UNKNOWN_FORMAT


def open_untrusted(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> Any:
    """Open an uploaded file for reading with ffmpeg limited to our demuxers and local I/O."""
    # max_pixels reaches the decoders ffmpeg opens while it reads the stream info:
    # without it, merely opening a 16000x16000 file decodes a frame of that size.
    options = {**_OPEN_OPTIONS, "max_pixels": str(limits.max_pixels)}
    # metadata_errors="replace": broken tag encodings must not turn into UnicodeDecodeError.
    return av.open(str(path), "r", options=options, metadata_errors="replace")


def bound_decoder(stream: Any, limits: MediaLimits, *, threads: int) -> None:
    """Cap a stream's decoder before it opens: picture size and threads."""
    context = stream.codec_context
    # A picture that grows mid-stream (a new sequence header) is refused by ffmpeg
    # itself before it allocates the frame.
    context.options = {**(context.options or {}), "max_pixels": str(limits.max_pixels)}
    context.thread_count = threads


def pick_video_stream(container: Any) -> Any | None:
    """Return the main video stream, skipping cover-art pictures; None if there is none."""
    candidates = [
        s
        for s in container.streams.video
        if not s.disposition & av.stream.Disposition.attached_pic and s.codec_context is not None
    ]
    if not candidates:
        return None
    defaults = [s for s in candidates if s.disposition & av.stream.Disposition.default]
    return (defaults or candidates)[0]


def pick_audio_stream(container: Any) -> Any | None:
    """Return the main decodable audio stream, or None."""
    candidates = [s for s in container.streams.audio if s.codec_context is not None]
    if not candidates:
        return None
    defaults = [s for s in candidates if s.disposition & av.stream.Disposition.default]
    return (defaults or candidates)[0]


def normalize_rotation(degrees: float) -> int:
    """Round a display-matrix angle to the nearest quarter turn in [0, 360)."""
    return (round(degrees / 90) * 90) % 360


def probe_video(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> ProbeResult:
    """Describe the video at path, or raise MediaRejected with a reason for the uploader.

    What exceeds ``limits`` is refused from the headers, before any frame is decoded.
    """
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head:
        raise MediaRejected("the file is empty")
    # Decide "image" from the magic bytes before ffmpeg sees the file: HEIC/AVIF photos
    # would otherwise open through the MP4 demuxer as one-frame "videos".
    if _looks_like_image(head):
        raise MediaRejected(REASON_IMAGE)
    try:
        container = open_untrusted(path, limits)
    except av.error.FFmpegError as exc:
        raise MediaRejected(_describe_unopenable(head)) from exc
    with container:
        return _inspect(container, limits)


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _inspect(container: Any, limits: MediaLimits) -> ProbeResult:
    if len(container.streams) > limits.max_streams:
        raise MediaRejected(
            f"the file has too many tracks ({len(container.streams)}); at most "
            f"{limits.max_streams} are accepted"
        )
    video = pick_video_stream(container)
    audio = pick_audio_stream(container)
    if video is None:
        if audio is not None or container.streams.video:
            raise MediaRejected(REASON_NO_VIDEO)
        raise MediaRejected("not a video file: it contains no video or audio")
    format_name: str = container.format.name
    # Belt and braces: the demuxer whitelist already excludes image demuxers.
    if format_name == "image2" or format_name.endswith("_pipe"):
        raise MediaRejected(REASON_IMAGE)
    if video.disposition & av.stream.Disposition.still_image:
        raise MediaRejected(REASON_IMAGE)

    _check_declared(container, video, limits)
    bound_decoder(video, limits, threads=1)  # five frames: not worth more threads
    first_frame, frame_times = _decode_start(container, video)
    limits.check_size(first_frame.width, first_frame.height)
    rotation = normalize_rotation(first_frame.rotation)
    width, height = first_frame.width, first_frame.height
    if rotation in (90, 270):
        width, height = height, width

    frame_rate = _frame_rate(video, frame_times)
    limits.check_frame_rate(frame_rate)
    duration = _declared_duration(container, video)
    duration = _check_end(container, video, audio, duration, frame_rate)
    # Again with what the packets say: headers may under-report the length.
    limits.check_duration(duration)
    if duration <= 0:
        raise MediaRejected("the video has zero duration")
    if duration < _MIN_DURATION_SECONDS:
        raise MediaRejected(f"the video is too short to play ({duration:.2f} s)")

    return ProbeResult(
        duration_seconds=duration,
        width=width,
        height=height,
        video_codec=video.codec_context.name,
        has_audio=audio is not None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        frame_rate=frame_rate,
        format_name=format_name,
        rotation=rotation,
    )


def _check_declared(container: Any, video: Any, limits: MediaLimits) -> None:
    """Refuse from the headers alone what exceeds the limits: nothing is decoded yet."""
    context = video.codec_context
    if context.width and context.height:
        limits.check_size(context.width, context.height)
    for rate in (video.average_rate, video.guessed_rate):
        if rate:
            limits.check_frame_rate(float(rate))
            break
    declared = _declared_duration(container, video)
    if declared is not None:
        limits.check_duration(declared)


def _decode_start(container: Any, video: Any) -> tuple[Any, list[float]]:
    """Decode the first few frames; reject files whose picture data does not decode."""
    first: Any = None
    times: list[float] = []
    decoded = 0
    try:
        for count, packet in enumerate(container.demux(video), start=1):
            for frame in video.decode(packet):
                first = frame if first is None else first
                decoded += 1
                if frame.time is not None:
                    times.append(frame.time)
            if decoded >= _START_FRAMES or count >= _START_PACKET_BUDGET:
                break
    except av.error.FFmpegError as exc:
        raise MediaRejected(
            "the video could not be decoded: its data is corrupt or incomplete"
        ) from exc
    if first is None:
        raise MediaRejected("the video could not be decoded: no picture could be read from it")
    return first, times


def _frame_rate(video: Any, frame_times: list[float]) -> float:
    for rate in (video.average_rate, video.guessed_rate):
        if rate:
            return float(rate)
    if len(frame_times) >= 2 and frame_times[-1] > frame_times[0]:
        return (len(frame_times) - 1) / (frame_times[-1] - frame_times[0])
    return 0.0


def _declared_duration(container: Any, video: Any) -> float | None:
    """Duration from the headers: the video track's own if known, else the container's."""
    stream_duration = _seconds(video.duration, video.time_base)
    if stream_duration is not None and stream_duration > 0:
        return stream_duration
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    return None


def _check_end(
    container: Any, video: Any, audio: Any | None, declared: float | None, frame_rate: float
) -> float:
    """Make sure the packets really reach the declared end; return the usable duration.

    Only demuxes (no decoding), so this costs a few milliseconds even for big files. A
    file cut short in its media data keeps headers promising the full length, but its
    packets stop early. When the headers state no duration, the whole file is scanned.
    """
    video_known = _seconds(video.duration, video.time_base) is not None
    video_start = _seconds(video.start_time, video.time_base)
    container_start = (
        float(container.start_time) / av.time_base if container.start_time is not None else 0.0
    )
    # Compare like with like: the video track's end with the video duration, or the
    # latest stream's end with the container duration (which covers a longer audio).
    start = video_start if video_known and video_start is not None else container_start
    streams = [video] if video_known or audio is None else [video, audio]

    if declared is not None:
        target = max(start, start + declared - _END_WINDOW_SECONDS)
        # Not seekable: keep demuxing from where the start check stopped.
        with contextlib.suppress(av.error.FFmpegError):
            container.seek(int(target * av.time_base), backward=True)

    reached: float | None = None
    try:
        for packet in container.demux(*streams):
            if packet.pts is None or packet.time_base is None:
                continue
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            reached = end if reached is None else max(reached, end)
    except av.error.FFmpegError:
        pass  # A read error at the tail is what truncation looks like; judged below.

    if reached is None:
        raise MediaRejected(REASON_TRUNCATED)
    actual = reached - start
    if declared is None:
        return actual
    # Packets without a duration end one frame early; allow a couple of frames of slack.
    tolerance = max(_MIN_END_TOLERANCE_SECONDS, 2.0 / frame_rate if frame_rate > 0 else 0.0)
    if abs(actual - declared) <= tolerance:
        return declared
    if actual > declared:
        return actual  # The header under-reports (e.g. a bitrate-based estimate).
    if start > tolerance and abs(reached - declared) <= tolerance:
        # Some muxers (ffmpeg's own Matroska/WebM writer among them) store the end
        # timestamp as the "duration" when timestamps do not start at zero. The data
        # is complete; the real length is what we measured.
        return actual
    raise MediaRejected(
        f"the video file is incomplete: it should last {declared:.1f} s but its data "
        f"stops at {max(actual, 0.0):.1f} s (was the upload cut short?)"
    )
