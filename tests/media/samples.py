"""Generators for small, real media files used by the media tests (built with PyAV, no binaries)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter

# testsrc2 draws a moving pattern with a running counter, so every frame differs
# and encoders cannot collapse the clip into a handful of skip frames.
_VIDEO_SOURCE = "testsrc2"


def _pull_all(graph: Any) -> Iterator[Any]:
    """Yield frames from a configured source-only filter graph until it ends."""
    while True:
        try:
            yield graph.pull()
        except av.error.EOFError:
            return


def _video_frames(width: int, height: int, fps: int, seconds: float) -> Iterator[Any]:
    graph = av.filter.Graph()
    src = graph.add(_VIDEO_SOURCE, f"size={width}x{height}:rate={fps}:duration={seconds}")
    sink = graph.add("buffersink")
    src.link_to(sink)
    graph.configure()
    yield from _pull_all(graph)


def _marker_frames(width: int, height: int, fps: int, seconds: float) -> Iterator[Any]:
    graph = av.filter.Graph()
    nodes = [
        graph.add("color", f"c=black:size={width}x{height}:rate={fps}:duration={seconds}"),
        graph.add("drawbox", f"x=0:y=0:w={width // 4}:h={height // 4}:color=white:t=fill"),
        graph.add("format", "yuv420p"),
        graph.add("buffersink"),
    ]
    graph.link_nodes(*nodes).configure()
    yield from _pull_all(graph)


def _audio_frames(seconds: float, rate: int = 48000) -> Iterator[Any]:
    graph = av.filter.Graph()
    # A 440 Hz tone with a beep every second: audible content, not silence.
    src = graph.add("sine", f"frequency=440:beep_factor=2:sample_rate={rate}:duration={seconds}")
    sink = graph.add("abuffersink")
    src.link_to(sink)
    graph.configure()
    yield from _pull_all(graph)


def write_video(
    path: Path,
    *,
    width: int,
    height: int,
    seconds: float = 2.0,
    fps: int = 30,
    video_codec: str = "libx264",
    audio_codec: str | None = "aac",
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
    drop_every: int | None = None,
    rotation: int | None = None,
    start_seconds: float = 0.0,
    sample_aspect_ratio: Fraction | None = None,
    marker: bool = False,
) -> Path:
    """Write a clip with a moving test pattern and (optionally) a sine tone; return its path.

    drop_every=N skips every Nth frame, which leaves gaps in the timestamps and so
    yields genuinely variable-frame-rate output. rotation stores a display matrix.
    start_seconds shifts every timestamp, like a capture that did not start at zero.
    sample_aspect_ratio makes the pixels non-square (anamorphic video). marker=True
    draws a black picture with one white box in the top-left corner instead of the
    test pattern, so tests can tell which way a picture was turned.
    """
    with av.open(str(path), "w", format=container_format, options=container_options or {}) as out:
        vopts = {"preset": "ultrafast"} if video_codec == "libx264" else {}
        if video_codec == "libvpx-vp9":
            # Realtime mode keeps VP9 sample generation fast on small CI machines.
            vopts = {"deadline": "realtime", "cpu-used": "8"}
        vstream: Any = out.add_stream(video_codec, rate=fps, options=vopts)
        vstream.width = width
        vstream.height = height
        vstream.pix_fmt = "yuv420p"
        if sample_aspect_ratio is not None:
            vstream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if rotation is not None:
            vstream.set_display_rotation(rotation)
        astream: Any = None
        if audio_codec is not None:
            astream = out.add_stream(audio_codec, rate=48000)
            astream.layout = "stereo"

        source = _marker_frames if marker else _video_frames
        for index, frame in enumerate(source(width, height, fps, seconds)):
            if drop_every is not None and index % drop_every == drop_every - 1:
                continue
            frame.pts += round(start_seconds * fps)
            out.mux(vstream.encode(frame))
        out.mux(vstream.encode(None))

        if astream is not None:
            for aframe in _audio_frames(seconds):
                aframe.pts += round(start_seconds * aframe.sample_rate)
                out.mux(astream.encode(aframe))
            out.mux(astream.encode(None))
    return path


def write_audio_only(path: Path, *, seconds: float = 2.0) -> Path:
    """Write an AAC-in-MP4 (.m4a) file with no video track."""
    with av.open(str(path), "w", format="mp4") as out:
        astream: Any = out.add_stream("aac", rate=48000)
        astream.layout = "stereo"
        for aframe in _audio_frames(seconds):
            out.mux(astream.encode(aframe))
        out.mux(astream.encode(None))
    return path


def write_png(path: Path, *, width: int = 320, height: int = 240) -> Path:
    """Write a single PNG image using PyAV's png encoder."""
    frame = next(_video_frames(width, height, 1, 1.0)).reformat(format="rgb24")
    codec: Any = av.CodecContext.create("png", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "rgb24"
    codec.time_base = Fraction(1, 1)
    packets = [*codec.encode(frame), *codec.encode(None)]
    path.write_bytes(b"".join(bytes(p) for p in packets))
    return path


def write_text(path: Path) -> Path:
    """Write a plain text file (what a confused user might upload as a 'video')."""
    path.write_text("These are my meeting notes, not a video.\n" * 50, encoding="utf-8")
    return path


def truncate_copy(source: Path, dest: Path, *, keep_fraction: float = 0.5) -> Path:
    """Copy the first keep_fraction of source's bytes to dest (a broken upload)."""
    data = source.read_bytes()
    dest.write_bytes(data[: int(len(data) * keep_fraction)])
    return dest


def write_single_frame(path: Path, *, width: int, height: int) -> Path:
    """Write one flat H.264 frame of any size (16000x16000 comes out under a megabyte).

    What an attacker uploads to make a server decode a picture of hundreds of megabytes.
    Writing it costs the test process that memory once (x264 holds the frame).
    """
    with av.open(str(path), "w") as out:
        options = {"preset": "ultrafast", "threads": "1", "x264-params": "rc-lookahead=0"}
        stream: Any = out.add_stream("libx264", rate=1, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts, frame.time_base = 0, Fraction(1, 1)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
