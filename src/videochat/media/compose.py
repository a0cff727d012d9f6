"""Compose a call's recorded tracks into one video: the cameras in a grid, the voices mixed.

Each input is one file of one publisher's stream, placed on the call's timeline by its
offset. A tile shows its stream's latest picture (fitted into the tile, black around
it) while that stream's file lasts, and black otherwise; the audio is every voice
summed. The result is an intermediate file (H.264 at high quality, PCM audio, in
Matroska) for the ordinary library transcode. CPU-bound and synchronous, bounded by
``max_seconds`` and ``MAX_TILES``; memory stays a few frames and audio blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from videochat.media.errors import MediaRejected

WIDTH, HEIGHT = 1280, 720
FRAME_RATE = 25
AUDIO_RATE = 48_000
AUDIO_BLOCK = AUDIO_RATE // FRAME_RATE  # one video frame's worth of samples
# More streams than this: the longest ones get a tile.
MAX_TILES = 16
BLACK = (16, 128, 128)  # Y, U, V
NOTHING_RECORDED = "nothing was recorded: nobody published audio or video while it ran"


@dataclass(frozen=True, slots=True)
class Track:
    path: Path
    offset: float  # seconds from the start of the recording
    slot: str  # video: the tile it shows in (a publisher's camera, their screen...)


def media_duration(path: Path) -> float:
    """How long a file's first audio or video stream lasts (its packets, not its header)."""
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type in ("audio", "video"))
        first: int | None = None
        last = 0
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            first = packet.pts if first is None else min(first, packet.pts)
            last = max(last, packet.pts + (packet.duration or 0))
        if first is None or stream.time_base is None:
            return 0.0
        return float((last - first) * stream.time_base)


def _decoded(container: Any, stream: Any) -> Iterator[Any]:
    """The stream's frames, past packets that do not decode: a call's recording has
    gaps (lost packets, a picture that starts before its first key frame)."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.FFmpegError:
            continue


def grid(count: int) -> list[tuple[int, int, int, int]]:
    """(x, y, width, height) of ``count`` tiles filling the canvas, even-sized."""
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    width, height = WIDTH // columns // 2 * 2, HEIGHT // rows // 2 * 2
    return [((n % columns) * width, (n // columns) * height, width, height) for n in range(count)]


class _Tile:
    """One stream's tile: its files in order, decoded one frame ahead of the clock."""

    def __init__(self, files: Sequence[tuple[Track, float]], rect: tuple[int, int, int, int]):
        self.rect = rect
        self.frames = self._frames(sorted(files, key=lambda item: item[0].offset))
        self.pending: tuple[float, float, Any] | None = next(self.frames, None)
        self.shown: tuple[float, Any] | None = None  # (end of its file, its picture planes)

    def _frames(self, files: Sequence[tuple[Track, float]]) -> Iterator[tuple[float, float, Any]]:
        for track, duration in files:
            end = track.offset + duration
            with av.open(str(track.path)) as container:
                stream = container.streams.video[0]
                first: float | None = None
                for frame in _decoded(container, stream):
                    if frame.time is None:
                        continue
                    first = frame.time if first is None else first
                    yield track.offset + frame.time - first, end, frame

    def picture_at(self, t: float) -> Any | None:
        """The planes to show at ``t``, or None (black)."""
        while self.pending is not None and self.pending[0] <= t:
            _, end, frame = self.pending
            self.shown = (end, self._fit(frame))
            self.pending = next(self.frames, None)
        if self.shown is None or t >= self.shown[0]:
            return None
        return self.shown[1]

    def _fit(self, frame: Any) -> list[np.ndarray]:
        _, _, width, height = self.rect
        scale = min(width / frame.width, height / frame.height)
        fit_w = max(2, int(frame.width * scale) // 2 * 2)
        fit_h = max(2, int(frame.height * scale) // 2 * 2)
        scaled = frame.reformat(width=fit_w, height=fit_h, format="yuv420p")
        planes = []
        for index, plane in enumerate(scaled.planes):
            w, h = (fit_w, fit_h) if index == 0 else (fit_w // 2, fit_h // 2)
            data = np.frombuffer(bytes(plane), dtype=np.uint8).reshape(-1, plane.line_size)
            planes.append(data[:h, :w])
        return planes


class _Voice:
    """One audio file as mono float samples from its offset on."""

    def __init__(self, track: Track) -> None:
        self.start = round(track.offset * AUDIO_RATE)
        self.samples = self._samples(track.path)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.cursor = self.start  # the timeline sample the buffer starts at

    @staticmethod
    def _samples(path: Path) -> Iterator[np.ndarray]:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        with av.open(str(path)) as container:
            for frame in _decoded(container, container.streams.audio[0]):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1).astype(np.float32)
        for out in resampler.resample(None):
            yield out.to_ndarray().reshape(-1).astype(np.float32)

    def add_to(self, mix: np.ndarray, at: int) -> None:
        """Add this voice's samples for the block starting at timeline sample ``at``."""
        end = at + len(mix)
        if end <= self.cursor:
            return
        while self.cursor + len(self.buffer) < end:
            chunk = next(self.samples, None)
            if chunk is None:
                break
            self.buffer = np.concatenate((self.buffer, chunk))
        begin = max(at, self.cursor)
        stop = min(end, self.cursor + len(self.buffer))
        if stop > begin:
            mix[begin - at : stop - at] += self.buffer[begin - self.cursor : stop - self.cursor]
        # Drop what the timeline has passed.
        passed = max(0, min(end, self.cursor + len(self.buffer)) - self.cursor)
        self.buffer = self.buffer[passed:]
        self.cursor += passed


def compose(
    video: Sequence[Track],
    audio: Sequence[Track],
    target: Path,
    *,
    max_seconds: float,
    progress: Callable[[float], None] | None = None,
) -> float:
    """Write the composed call to ``target`` (Matroska); its duration in seconds."""
    durations = {track.path: media_duration(track.path) for track in (*video, *audio)}
    extents = [track.offset + durations[track.path] for track in (*video, *audio)]
    if not extents or max(extents) <= 0:
        raise MediaRejected(NOTHING_RECORDED)
    total = min(max(extents), max_seconds)
    tiles = _tiles(video, durations)
    voices = [_Voice(track) for track in audio if durations[track.path] > 0]
    frames = max(1, math.ceil(total * FRAME_RATE))
    with av.open(str(target), "w", format="matroska") as output:
        picture = output.add_stream("libx264", rate=FRAME_RATE)
        picture.width, picture.height, picture.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        picture.options = {"preset": "ultrafast", "crf": "18"}
        picture.time_base = Fraction(1, FRAME_RATE)
        sound = output.add_stream("pcm_s16le", rate=AUDIO_RATE, layout="mono")
        planes = [
            np.full((HEIGHT, WIDTH), BLACK[0], np.uint8),
            np.full((HEIGHT // 2, WIDTH // 2), BLACK[1], np.uint8),
            np.full((HEIGHT // 2, WIDTH // 2), BLACK[2], np.uint8),
        ]
        for number in range(frames):
            t = number / FRAME_RATE
            for tile in tiles:
                _paint(planes, tile.rect, tile.picture_at(t))
            frame = av.VideoFrame.from_ndarray(
                np.concatenate([plane.reshape(-1) for plane in planes]).reshape(-1, WIDTH),
                format="yuv420p",
            )
            frame.pts = number
            frame.time_base = picture.time_base
            output.mux(picture.encode(frame))
            mix = np.zeros(AUDIO_BLOCK, dtype=np.float32)
            for voice in voices:
                voice.add_to(mix, number * AUDIO_BLOCK)
            samples = (np.clip(mix, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
            block = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            block.sample_rate = AUDIO_RATE
            block.pts = number * AUDIO_BLOCK
            block.time_base = Fraction(1, AUDIO_RATE)
            output.mux(sound.encode(block))
            if progress is not None and number % FRAME_RATE == 0:
                progress(number / frames)
        output.mux(picture.encode(None))
        output.mux(sound.encode(None))
    return frames / FRAME_RATE


def _tiles(video: Sequence[Track], durations: dict[Path, float]) -> list[_Tile]:
    slots: dict[str, list[tuple[Track, float]]] = {}
    for track in video:
        if durations[track.path] > 0:
            slots.setdefault(track.slot, []).append((track, durations[track.path]))
    # The longest-running streams first: they are the tiles kept past MAX_TILES.
    chosen = sorted(slots.values(), key=lambda files: -sum(d for _, d in files))[:MAX_TILES]
    chosen.sort(key=lambda files: min(track.offset for track, _ in files))
    return [_Tile(files, rect) for files, rect in zip(chosen, grid(len(chosen)), strict=True)]


def _paint(planes: list[np.ndarray], rect: tuple[int, int, int, int], picture: Any) -> None:
    """Put a tile's picture (centred, black around it), or black, on the canvas."""
    x, y, width, height = rect
    for index, plane in enumerate(planes):
        div = 1 if index == 0 else 2
        cx, cy, cw, ch = x // div, y // div, width // div, height // div
        plane[cy : cy + ch, cx : cx + cw] = BLACK[index]
        if picture is not None:
            part = picture[index]
            ph, pw = part.shape
            top, left = cy + (ch - ph) // 2, cx + (cw - pw) // 2
            plane[top : top + ph, left : left + pw] = part
