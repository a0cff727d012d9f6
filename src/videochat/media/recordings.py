"""A call recording's video job: Janus's ``.mjr`` files become the video's source.

Janus's VideoRoom writes one ``.mjr`` file per stream of each publisher into the
recording's folder (``sfu.recording``). The job converts each with Debian's
``janus-pp-rec`` (VP8/VP9 to WebM, H.264/AV1 to MP4, Opus to Ogg, G.711/G.722 to WAV),
places them on one timeline by the time their first packet was written (in each
file's header; Janus's clock only, so videochat's may differ), composes them
(``compose``) and hands the result to the ordinary transcode. The raw files are
removed once the source is made, or when the video fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.config import SfuSettings
from videochat.db.models import CallRecording
from videochat.media.compose import NOTHING_RECORDED, Track, compose
from videochat.media.errors import MediaRejected

log = structlog.get_logger(__name__)

JANUS_PP_REC = "janus-pp-rec"
MJR_MAGIC = b"MJR00002"
# What janus-pp-rec writes for each codec Janus records.
EXTENSIONS = {
    "vp8": "webm",
    "vp9": "webm",
    "h264": "mp4",
    "av1": "mp4",
    "h265": "mp4",
    "opus": "opus",
    "multiopus": "opus",
    "pcmu": "wav",
    "pcma": "wav",
    "g711": "wav",
    "g722": "wav",
    "l16": "wav",
}
# janus-pp-rec reorders packets in memory: a bound on its time per file.
CONVERT_SECONDS_PER_MB = 2.0
CONVERT_MIN_SECONDS = 30.0
# "videoroom-<room>-user-<publisher>-<created µs>-<audio|video|data>-<m-line>.mjr"
FILE_NAME = re.compile(
    r"-user-(?P<publisher>[^-]+)-(?P<created>\d+)-(?P<kind>audio|video)-(?P<mline>\d+)\.mjr$"
)


def too_large(max_bytes: int) -> str:
    return f"the recording's files are larger than the limit of {max_bytes} bytes"


@dataclass(frozen=True, slots=True)
class RecordedStream:
    path: Path
    kind: str  # "audio" or "video"
    codec: str
    first_packet_us: int  # Janus's wall clock when it wrote the first packet
    slot: str  # the publisher and m-line: one tile


async def recording_folder(
    session: AsyncSession, settings: SfuSettings, video_id: str
) -> Path | None:
    """The raw files' folder when the video is a call recording, else None."""
    folder = await session.scalar(
        select(CallRecording.folder).where(CallRecording.video_id == video_id)
    )
    if folder is None or settings.recording_dir is None:
        return None
    return settings.recording_dir / folder


def read_header(path: Path) -> dict[str, object] | None:
    """The JSON header of a ``.mjr`` file; None when nothing was written to it."""
    with path.open("rb") as handle:
        if handle.read(len(MJR_MAGIC)) != MJR_MAGIC:
            return None
        size = int.from_bytes(handle.read(2), "big")
        if not size:
            return None
        try:
            header: dict[str, object] = json.loads(handle.read(size))
        except ValueError:
            return None
    return header


def recorded_streams(folder: Path) -> list[RecordedStream]:
    """The folder's audio and video recordings that hold packets."""
    found = []
    for path in sorted(folder.glob("*.mjr")):
        name = FILE_NAME.search(path.name)
        header = read_header(path)
        if name is None or header is None:
            continue
        codec, first = str(header.get("c", "")).lower(), header.get("u")
        if codec not in EXTENSIONS or not isinstance(first, int):
            log.warning("recording.stream_skipped", file=path.name, codec=codec)
            continue
        slot = f"{name['publisher']}-{name['mline']}"
        found.append(RecordedStream(path, name["kind"], codec, first, slot))
    return found


def convert(stream: RecordedStream, into: Path) -> Path | None:
    """The stream as a media file (janus-pp-rec), or None when nothing came of it."""
    target = into / f"{stream.path.stem}.{EXTENSIONS[stream.codec]}"
    megabytes = stream.path.stat().st_size / 1024**2
    timeout = CONVERT_MIN_SECONDS + CONVERT_SECONDS_PER_MB * megabytes
    binary = shutil.which(JANUS_PP_REC) or f"/usr/bin/{JANUS_PP_REC}"
    try:
        done = subprocess.run(
            [binary, "-o", "-d", "2", str(stream.path), str(target)],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log.warning("recording.convert_timeout", file=stream.path.name)
        return None
    if done.returncode != 0 or not target.exists() or target.stat().st_size == 0:
        log.warning(
            "recording.convert_failed",
            file=stream.path.name,
            code=done.returncode,
            output=done.stdout[-500:].decode(errors="replace"),
        )
        return None
    return target


def build_source(
    folder: Path,
    target: Path,
    *,
    max_seconds: float,
    max_bytes: int,
    progress: Callable[[float], None] | None = None,
) -> float:
    """Compose the recording in ``folder`` into ``target``; its duration.

    ``MediaRejected`` when it is too large or holds nothing. Blocking (a worker thread).
    """
    if not folder.is_dir():
        raise MediaRejected(NOTHING_RECORDED)
    size = sum(path.stat().st_size for path in folder.glob("*.mjr"))
    if size > max_bytes:
        raise MediaRejected(too_large(max_bytes))
    streams = recorded_streams(folder)
    if not streams:
        raise MediaRejected(NOTHING_RECORDED)
    origin = min(stream.first_packet_us for stream in streams)
    began = time.monotonic()
    work = folder / ".converted"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        video: list[Track] = []
        audio: list[Track] = []
        for stream in streams:
            converted = convert(stream, work)
            if converted is None:
                continue
            track = Track(converted, (stream.first_packet_us - origin) / 1e6, stream.slot)
            (video if stream.kind == "video" else audio).append(track)
        if not video and not audio:
            raise MediaRejected(NOTHING_RECORDED)
        converted_at = time.monotonic()
        duration = compose(video, audio, target, max_seconds=max_seconds, progress=progress)
        log.info(
            "recording.composed",
            streams=len(video) + len(audio),
            duration=duration,
            convert_seconds=round(converted_at - began, 2),
            compose_seconds=round(time.monotonic() - converted_at, 2),
        )
        return duration
    finally:
        shutil.rmtree(work, ignore_errors=True)


def discard(folder: Path) -> None:
    """Remove a recording's raw files (blocking)."""
    shutil.rmtree(folder, ignore_errors=True)
