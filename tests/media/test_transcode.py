"""transcode_to_hls() on real generated clips: every rendition must decode, align and look right."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from videochat.media.errors import MediaRejected
from videochat.media.transcode import (
    DEFAULT_RENDITIONS,
    Rendition,
    plan_renditions,
    transcode_to_hls,
)

from . import samples
from .conftest import SEGMENT_SECONDS, Case, Transcoded

ALL_CASES = ["h264_720p", "vp9_webm_vfr", "no_audio_4x3", "portrait", "rotated", "mpegts", "tiny"]

# Which renditions each case must get: never upscaled, and a tiny source keeps its size.
EXPECTED_RENDITIONS = {
    "h264_720p": {"360p": (640, 360), "720p": (1280, 720)},
    "vp9_webm_vfr": {"360p": (640, 360)},
    "no_audio_4x3": {"360p": (480, 360)},
    "portrait": {"360p": (360, 640)},
    "rotated": {"360p": (360, 640)},
    "mpegts": {"360p": (640, 360)},
    "tiny": {"180p": (320, 180)},
}

TranscodeCase = Callable[[str], Transcoded]


@dataclass
class VideoTrack:
    """What decoding a file's video yields."""

    frames: int
    times: list[float]
    sizes: set[tuple[int, int]]

    @property
    def span(self) -> float:
        return self.times[-1] - self.times[0]


def decode_video(path: Path) -> VideoTrack:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return VideoTrack(
        frames=len(frames),
        times=[f.time for f in frames],
        sizes={(f.width, f.height) for f in frames},
    )


def decode_audio(path: Path) -> tuple[float, float] | None:
    """(start time, seconds of decoded audio) of the first audio stream, or None."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        frames = list(container.decode(audio=0))
    samples_total = sum(f.samples for f in frames)
    return frames[0].time, samples_total / frames[0].sample_rate


def read_media_playlist(path: Path) -> list[tuple[float, str]]:
    """(EXTINF duration, segment URI) pairs of an HLS media playlist."""
    entries: list[tuple[float, str]] = []
    duration: float | None = None
    lines = path.read_text().splitlines()
    assert lines[0] == "#EXTM3U"
    assert "#EXT-X-ENDLIST" in lines
    for line in lines:
        if line.startswith("#EXTINF:"):
            duration = float(line.removeprefix("#EXTINF:").split(",")[0])
        elif line and not line.startswith("#"):
            assert duration is not None
            entries.append((duration, line))
            duration = None
    return entries


def read_master_playlist(path: Path) -> list[tuple[dict[str, str], str]]:
    """(attributes, URI) for every #EXT-X-STREAM-INF of a master playlist."""
    lines = path.read_text().splitlines()
    assert lines[0] == "#EXTM3U"
    assert any(line.startswith("#EXT-X-VERSION:") for line in lines)
    variants = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            variants.append(({k: v.strip('"') for k, v in attrs.items()}, lines[i + 1]))
    return variants


def mean_luma(frame: Any) -> float:
    """Average of the Y plane, skipping per-line padding."""
    plane = frame.planes[0]
    data = bytes(plane)
    width = frame.width
    total = sum(
        sum(data[row * plane.line_size : row * plane.line_size + width])
        for row in range(frame.height)
    )
    return total / (width * frame.height)


@pytest.mark.parametrize("name", ALL_CASES)
def test_renditions_match_the_plan_never_upscale_and_keep_aspect(
    name: str, transcode_case: TranscodeCase
) -> None:
    done = transcode_case(name)
    case = done.case
    got = {r.name: (r.width, r.height) for r in done.result.renditions}
    assert got == EXPECTED_RENDITIONS[name]
    assert (done.result.width, done.result.height) == (case.display_width, case.display_height)
    source_ratio = case.display_width / case.display_height
    for width, height in got.values():
        assert width % 2 == 0 and height % 2 == 0
        assert width <= case.display_width and height <= case.display_height
        # Only even-rounding may bend the ratio: at most one 2-pixel step on the long side.
        assert abs(width / height - source_ratio) <= 2 / min(width, height)


@pytest.mark.parametrize("name", ALL_CASES)
def test_every_rendition_decodes_fully_with_source_frame_count_and_duration(
    name: str, transcode_case: TranscodeCase
) -> None:
    done = transcode_case(name)
    source = decode_video(done.case.path)
    source_audio = decode_audio(done.case.path)
    for rendition in done.result.renditions:
        playlist = done.out_dir / rendition.playlist
        out = decode_video(playlist)
        assert out.frames == source.frames, rendition.name
        assert out.sizes == {(rendition.width, rendition.height)}
        assert abs(out.span - source.span) < 0.1
        listed = sum(d for d, _ in read_media_playlist(playlist))
        assert abs(listed - done.result.duration_seconds) < 0.1

        out_audio = decode_audio(playlist)
        if not done.case.has_audio:
            assert out_audio is None
            continue
        assert source_audio is not None and out_audio is not None
        assert abs(out_audio[1] - source_audio[1]) < 0.1
        # Lip sync: audio must start where it started relative to the picture.
        source_offset = source_audio[0] - source.times[0]
        out_offset = out_audio[0] - out.times[0]
        assert abs(out_offset - source_offset) < 0.05


@pytest.mark.parametrize("name", ALL_CASES)
def test_segments_start_on_keyframes_and_align_across_renditions(
    name: str, transcode_case: TranscodeCase
) -> None:
    done = transcode_case(name)
    timelines = []
    for rendition in done.result.renditions:
        entries = read_media_playlist(done.out_dir / rendition.playlist)
        assert len(entries) >= 2, "clip should span several segments"
        # All but the last segment end on the first frame at/after a boundary: they are
        # at least segment_seconds long and at most one (VFR) frame gap longer.
        for duration, _ in entries[:-1]:
            assert SEGMENT_SECONDS - 1e-3 <= duration < SEGMENT_SECONDS + 0.1
        for _, uri in entries:
            segment = done.out_dir / Path(rendition.playlist).parent / uri
            with av.open(str(segment)) as container:
                packets = [p for p in container.demux(video=0) if p.size]
                assert packets[0].is_keyframe, f"{segment.name} does not start on a keyframe"
            # Decoding the segment on its own yields every frame: it needs nothing
            # from the previous segment (SPS/PPS present, closed GOP).
            assert decode_video(segment).frames == len(packets)
        timelines.append([d for d, _ in entries])
    for other in timelines[1:]:
        assert other == pytest.approx(timelines[0], abs=2e-3)


@pytest.mark.parametrize("name", ALL_CASES)
def test_master_playlist_lists_each_rendition(name: str, transcode_case: TranscodeCase) -> None:
    done = transcode_case(name)
    assert done.result.master_playlist == "master.m3u8"
    variants = read_master_playlist(done.out_dir / "master.m3u8")
    assert [uri for _, uri in variants] == [r.playlist for r in done.result.renditions]
    for (attrs, uri), rendition in zip(variants, done.result.renditions, strict=True):
        assert (done.out_dir / uri).is_file()
        assert attrs["RESOLUTION"] == f"{rendition.width}x{rendition.height}"
        assert int(attrs["BANDWIDTH"]) == rendition.bandwidth > 0
        assert int(attrs["AVERAGE-BANDWIDTH"]) <= rendition.bandwidth
        codecs = attrs["CODECS"].split(",")
        assert re.fullmatch(r"avc1\.[0-9a-f]{6}", codecs[0])
        assert codecs[1:] == (["mp4a.40.2"] if done.case.has_audio else [])


def test_codecs_attribute_reflects_the_encoded_profile_and_level(
    transcode_case: TranscodeCase,
) -> None:
    done = transcode_case("h264_720p")
    by_name = {r.name: r for r in done.result.renditions}
    for name, rendition in by_name.items():
        with av.open(str(done.out_dir / rendition.playlist)) as container:
            context = container.streams.video[0].codec_context
            profile, level = context.profile, context.level
        avc = rendition.codecs.split(",")[0]
        assert profile == "High"
        assert avc.startswith("avc1.64"), name  # profile_idc 100 = High
        assert int(avc[-2:], 16) == level, name


def test_thumbnail_is_a_decodable_jpeg_of_the_smallest_rendition_size(
    transcode_case: TranscodeCase,
) -> None:
    done = transcode_case("h264_720p")
    path = done.out_dir / done.result.thumbnail
    assert path.read_bytes()[:3] == b"\xff\xd8\xff"
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mjpeg"
        frames = list(container.decode(video=0))
    assert len(frames) == 1
    smallest = min(done.result.renditions, key=lambda r: r.height)
    assert (frames[0].width, frames[0].height) == (smallest.width, smallest.height)

    # Same brightness as the source picture at that moment (0.2 s = 10% of 2 s), after
    # JPEG's full-range expansion: catches black frames and range mix-ups alike.
    with av.open(str(done.case.path)) as container:
        source = next(f for f in container.decode(video=0) if f.time >= 0.2 - 1e-6)
    expected = (mean_luma(source) - 16) * 255 / 219
    assert abs(mean_luma(frames[0]) - expected) < 8


def test_portrait_thumbnail_is_portrait(transcode_case: TranscodeCase) -> None:
    done = transcode_case("rotated")
    with av.open(str(done.out_dir / "thumbnail.jpg")) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (360, 640)


def test_rendition_brightness_is_preserved(transcode_case: TranscodeCase) -> None:
    done = transcode_case("h264_720p")
    with av.open(str(done.case.path)) as container:
        source = next(container.decode(video=0))
    for rendition in done.result.renditions:
        with av.open(str(done.out_dir / rendition.playlist)) as container:
            out = next(container.decode(video=0))
        assert abs(mean_luma(out) - mean_luma(source)) < 4, rendition.name


def test_progress_is_monotonic_and_ends_at_one(transcode_case: TranscodeCase) -> None:
    done = transcode_case("h264_720p")
    reported = done.progress
    assert len(reported) > 5
    assert reported == sorted(reported)
    assert all(0.0 <= p <= 1.0 for p in reported)
    assert reported[-1] == 1.0
    assert reported[-2] < 1.0


def test_progress_callback_can_abort_without_writing_a_master(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    class Cancelled(Exception):
        pass

    def stop(fraction: float) -> None:
        if fraction > 0.3:
            raise Cancelled

    with pytest.raises(Cancelled):
        transcode_to_hls(cases["tiny"].path, tmp_path / "out", progress=stop)
    assert not (tmp_path / "out" / "master.m3u8").exists()


@pytest.mark.parametrize(
    ("writer", "reason"),
    [
        (samples.write_text, "not a video file"),
        (samples.write_png, "image"),
        (samples.write_audio_only, "no video track"),
    ],
)
def test_bad_sources_are_rejected_before_writing_anything(
    writer: Callable[[Path], Path], reason: str, tmp_path: Path
) -> None:
    source = writer(tmp_path / "upload.bin")
    with pytest.raises(MediaRejected, match=reason):
        transcode_to_hls(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), [("360p", 640, 360), ("720p", 1280, 720)]),
        ((1080, 1920), [("360p", 360, 640), ("720p", 720, 1280)]),
        ((1280, 720), [("360p", 640, 360), ("720p", 1280, 720)]),
        ((960, 540), [("360p", 640, 360)]),
        ((640, 480), [("360p", 480, 360)]),
        ((480, 640), [("360p", 360, 480)]),
        ((640, 360), [("360p", 640, 360)]),
        ((320, 180), [("180p", 320, 180)]),
        ((333, 201), [("200p", 332, 200)]),
        ((639, 360), [("360p", 638, 360)]),
    ],
)
def test_plan_renditions(size: tuple[int, int], expected: list[tuple[str, int, int]]) -> None:
    planned = plan_renditions(*size, DEFAULT_RENDITIONS)
    assert [(p.rendition.name, p.width, p.height) for p in planned] == expected


def test_plan_renditions_sorts_custom_ladders_and_validates() -> None:
    ladder = [Rendition("hd", 720, 2_000_000, 128_000), Rendition("sd", 240, 300_000, 64_000)]
    assert [p.rendition.name for p in plan_renditions(1280, 720, ladder)] == ["sd", "hd"]
    with pytest.raises(ValueError, match="even"):
        Rendition("odd", 361, 1, 1)
    with pytest.raises(ValueError):
        plan_renditions(1280, 720, [])


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe CLI not installed")
def test_ffprobe_agrees_on_the_master_playlist(transcode_case: TranscodeCase) -> None:
    done = transcode_case("h264_720p")
    completed = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,profile",
            "-of",
            "json",
            str(done.out_dir / "master.m3u8"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    streams = json.loads(completed.stdout)["streams"]
    sizes = {(s["width"], s["height"]) for s in streams if s.get("codec_name") == "h264"}
    assert sizes == {(r.width, r.height) for r in done.result.renditions}
    assert any(s.get("codec_name") == "aac" for s in streams)


def region_luma(frame: Any, left: float, top: float, right: float, bottom: float) -> float:
    """Average luma of a rectangle given in fractions of the picture size."""
    plane = frame.planes[0]
    data = bytes(plane)
    x0, x1 = int(left * frame.width), int(right * frame.width)
    y0, y1 = int(top * frame.height), int(bottom * frame.height)
    rows = range(y0, y1)
    total = sum(sum(data[y * plane.line_size + x0 : y * plane.line_size + x1]) for y in rows)
    return total / ((x1 - x0) * (y1 - y0))


QUADRANTS = {
    "top-left": (0.0, 0.0, 0.5, 0.5),
    "top-right": (0.5, 0.0, 1.0, 0.5),
    "bottom-left": (0.0, 0.5, 0.5, 1.0),
    "bottom-right": (0.5, 0.5, 1.0, 1.0),
}


def brightest_quadrant(frame: Any) -> str:
    lumas = {name: region_luma(frame, *box) for name, box in QUADRANTS.items()}
    return max(lumas, key=lambda name: lumas[name])


@pytest.mark.parametrize(
    ("rotation", "corner"),
    [(0, "top-left"), (-90, "top-right"), (90, "bottom-left"), (180, "bottom-right")],
)
def test_display_rotation_is_baked_in_the_way_players_show_it(
    tmp_path: Path, rotation: int, corner: str
) -> None:
    # The stored picture has a white box top-left. ffmpeg (and players) show a display
    # matrix of -90 degrees as a clockwise quarter turn, moving the box top-right.
    source = samples.write_video(
        tmp_path / "marker.mp4",
        width=320,
        height=180,
        seconds=1.0,
        audio_codec=None,
        marker=True,
        rotation=rotation,
    )
    result = transcode_to_hls(source, tmp_path / "out", segment_seconds=SEGMENT_SECONDS)
    (rendition,) = result.renditions
    upright = rotation in (0, 180)
    assert (rendition.width, rendition.height) == ((320, 180) if upright else (180, 320))
    with av.open(str(tmp_path / "out" / rendition.playlist)) as container:
        assert brightest_quadrant(next(container.decode(video=0))) == corner
    with av.open(str(tmp_path / "out" / result.thumbnail)) as container:
        assert brightest_quadrant(next(container.decode(video=0))) == corner


def test_anamorphic_source_is_resized_to_its_display_aspect(tmp_path: Path) -> None:
    # 480x360 stored pixels that are 4:3 wide each: a 16:9 picture, shown at 640x360.
    source = samples.write_video(
        tmp_path / "anamorphic.mp4",
        width=480,
        height=360,
        seconds=1.0,
        audio_codec=None,
        sample_aspect_ratio=Fraction(4, 3),
    )
    result = transcode_to_hls(source, tmp_path / "out", segment_seconds=SEGMENT_SECONDS)
    assert (result.width, result.height) == (640, 360)
    (rendition,) = result.renditions
    assert (rendition.width, rendition.height) == (640, 360)
    with av.open(str(tmp_path / "out" / rendition.playlist)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        sar = stream.codec_context.sample_aspect_ratio
    assert (frame.width, frame.height) == (640, 360)
    # The output pixels are square; a leftover 4:3 flag would make players stretch again.
    assert sar in (None, 0, 1)


@pytest.mark.parametrize(
    ("fps", "cap", "expected"), [(60, 30, 30), (50, 30, 25), (120, 30, 30), (24, 30, 24)]
)
def test_renditions_never_run_faster_than_the_frame_rate_cap(
    tmp_path: Path, fps: int, cap: int, expected: int
) -> None:
    # 60 fps pays twice the encoding of 30 for a picture nobody watches in a library.
    source = samples.write_video(
        tmp_path / f"fast{fps}.mp4", width=320, height=180, fps=fps, seconds=2.0
    )
    result = transcode_to_hls(
        source, tmp_path / "out", segment_seconds=SEGMENT_SECONDS, max_frame_rate=cap
    )
    (rendition,) = result.renditions
    track = decode_video(tmp_path / "out" / rendition.playlist)
    assert track.frames == pytest.approx(2 * expected, abs=1)
    steps = {round(b - a, 3) for a, b in zip(track.times, track.times[1:], strict=False)}
    assert steps == {round(1 / expected, 3)}, steps
    assert track.span + 1 / expected == pytest.approx(2.0, abs=0.05)
    assert decode_audio(tmp_path / "out" / rendition.playlist) is not None


def test_a_source_beyond_the_limits_is_refused_before_any_output(
    huge_frame: Path, tmp_path: Path
) -> None:
    with pytest.raises(MediaRejected, match="too large"):
        transcode_to_hls(huge_frame, tmp_path / "out")
    assert not (tmp_path / "out").exists()
