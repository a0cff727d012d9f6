"""Session-wide generated sample clips and transcode results for the media tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from videochat.media.transcode import TranscodeResult, transcode_to_hls

from . import samples

# Short segments so that 2 s clips still produce several segments to check alignment on.
SEGMENT_SECONDS = 1.0


@dataclass(frozen=True)
class Case:
    """A generated source clip plus what its displayed picture should look like."""

    name: str
    path: Path
    display_width: int
    display_height: int
    has_audio: bool


@dataclass(frozen=True)
class Transcoded:
    """A case after transcode_to_hls(), with the progress values it reported."""

    case: Case
    out_dir: Path
    result: TranscodeResult
    progress: list[float]


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding every generated sample."""
    return tmp_path_factory.mktemp("media-samples")


@pytest.fixture(scope="session")
def cases(sample_dir: Path) -> dict[str, Case]:
    """Real clips in the shapes uploads come in: landscape, 4:3, portrait, rotated, ..."""

    def make(name: str, filename: str, w: int, h: int, has_audio: bool, **kw: Any) -> Case:
        path = samples.write_video(sample_dir / filename, **kw)
        return Case(name, path, w, h, has_audio)

    built = [
        make("h264_720p", "h264_720p.mp4", 1280, 720, True, width=1280, height=720),
        # VP9 + Opus with every 3rd frame dropped: variable frame rate timestamps.
        make(
            "vp9_webm_vfr",
            "vp9_vfr.webm",
            640,
            360,
            True,
            width=640,
            height=360,
            video_codec="libvpx-vp9",
            audio_codec="libopus",
            drop_every=3,
        ),
        make(
            "no_audio_4x3",
            "no_audio_4x3.mp4",
            640,
            480,
            False,
            width=640,
            height=480,
            audio_codec=None,
        ),
        make("portrait", "portrait.mp4", 360, 640, True, width=360, height=640),
        # Phone-style portrait: landscape pixels plus a display matrix saying "turn me".
        make("rotated", "rotated.mp4", 360, 640, True, width=640, height=360, rotation=-90),
        # Like a cut from a broadcast recording: MPEG-TS timestamps starting at 10 s.
        make(
            "mpegts",
            "clip.ts",
            640,
            360,
            True,
            width=640,
            height=360,
            container_format="mpegts",
            start_seconds=10.0,
        ),
        # Smaller than the whole ladder: expect a single rendition at source size.
        make("tiny", "tiny.mp4", 320, 180, True, width=320, height=180),
    ]
    return {case.name: case for case in built}


@pytest.fixture(scope="session")
def huge_frame(sample_dir: Path) -> Path:
    """A 16000x16000 single-frame video of under a megabyte (each decoded frame: 384 MB)."""
    return samples.write_single_frame(sample_dir / "huge.mkv", width=16000, height=16000)


@pytest.fixture(scope="session")
def transcode_case(
    cases: dict[str, Case], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Transcoded]:
    """Transcode a case on first use and reuse the output for every test that asks for it."""
    done: dict[str, Transcoded] = {}

    def get(name: str) -> Transcoded:
        if name not in done:
            case = cases[name]
            out_dir = tmp_path_factory.mktemp(f"hls-{name}")
            reported: list[float] = []
            result = transcode_to_hls(
                case.path, out_dir, segment_seconds=SEGMENT_SECONDS, progress=reported.append
            )
            done[name] = Transcoded(case, out_dir, result, reported)
        return done[name]

    return get
