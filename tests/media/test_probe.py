"""probe_video() and sniff_is_media_container() on real generated files, good and bad."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import pytest

from videochat.media import probe
from videochat.media.errors import MediaRejected
from videochat.media.probe import (
    SNIFF_BYTES,
    MediaLimits,
    probe_video,
    sniff_is_media_container,
)

from . import samples
from .conftest import Case


@pytest.mark.parametrize(
    ("name", "codec", "audio_codec", "rotation"),
    [
        ("h264_720p", "h264", "aac", 0),
        ("vp9_webm_vfr", "vp9", "opus", 0),
        ("no_audio_4x3", "h264", None, 0),
        ("portrait", "h264", "aac", 0),
        ("rotated", "h264", "aac", 270),
        ("mpegts", "h264", "aac", 0),
    ],
)
def test_probe_describes_good_videos(
    cases: dict[str, Case], name: str, codec: str, audio_codec: str | None, rotation: int
) -> None:
    case = cases[name]
    result = probe_video(case.path)
    assert (result.width, result.height) == (case.display_width, case.display_height)
    assert result.video_codec == codec
    assert result.has_audio is (audio_codec is not None)
    assert result.audio_codec == audio_codec
    assert result.rotation == rotation
    assert result.duration_seconds == pytest.approx(2.0, abs=0.1)
    assert result.frame_rate == pytest.approx(30.0, abs=0.5)
    assert result.format_name


def test_probe_reports_the_container(cases: dict[str, Case]) -> None:
    assert "mp4" in probe_video(cases["h264_720p"].path).format_name.split(",")
    assert "webm" in probe_video(cases["vp9_webm_vfr"].path).format_name.split(",")
    assert probe_video(cases["mpegts"].path).format_name == "mpegts"


@pytest.mark.parametrize(
    ("filename", "options"),
    [
        ("clip.flv", {"container_format": "flv"}),
        ("clip.avi", {"container_format": "avi", "video_codec": "mpeg4", "audio_codec": "mp3"}),
        ("clip.mkv", {"video_codec": "libvpx-vp9", "audio_codec": "libopus"}),
    ],
)
def test_probe_accepts_the_other_containers(
    tmp_path: Path, filename: str, options: dict[str, str]
) -> None:
    path = samples.write_video(tmp_path / filename, width=320, height=240, seconds=1.0, **options)
    result = probe_video(path)
    assert (result.width, result.height) == (320, 240)
    assert result.duration_seconds == pytest.approx(1.0, abs=0.1)


def test_webm_whose_timestamps_start_late_is_not_mistaken_for_truncated(tmp_path: Path) -> None:
    # ffmpeg's WebM muxer then stores the *end* timestamp (12 s) as the duration.
    path = samples.write_video(
        tmp_path / "late.webm",
        width=320,
        height=240,
        video_codec="libvpx-vp9",
        audio_codec="libopus",
        start_seconds=10.0,
    )
    assert probe_video(path).duration_seconds == pytest.approx(2.0, abs=0.1)


def _text(tmp_path: Path) -> Path:
    return samples.write_text(tmp_path / "notes.mp4")  # a misleading extension on purpose


def _png(tmp_path: Path) -> Path:
    return samples.write_png(tmp_path / "photo.png")


def _jpeg_named_like_a_video(tmp_path: Path) -> Path:
    # One JPEG-encoded picture renamed .mp4: the image check must not trust the name.
    path = tmp_path / "holiday.mp4"
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 48, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame(64, 48, "yuvj420p")
    path.write_bytes(b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)]))
    return path


def _audio_only(tmp_path: Path) -> Path:
    return samples.write_audio_only(tmp_path / "voice.m4a")


def _truncated_mp4_without_index(tmp_path: Path) -> Path:
    # ffmpeg writes the "moov" index at the end of an MP4: cutting the file loses it.
    full = samples.write_video(tmp_path / "full.mp4", width=640, height=360)
    return samples.truncate_copy(full, tmp_path / "cut.mp4")


def _truncated_faststart_mp4(tmp_path: Path) -> Path:
    # faststart puts the index first, so the cut file opens and promises 2 s of media
    # that is no longer there.
    full = samples.write_video(
        tmp_path / "full.mp4",
        width=640,
        height=360,
        container_options={"movflags": "faststart"},
    )
    return samples.truncate_copy(full, tmp_path / "cut.mp4")


def _truncated_webm(tmp_path: Path) -> Path:
    full = samples.write_video(
        tmp_path / "full.webm",
        width=640,
        height=360,
        video_codec="libvpx-vp9",
        audio_codec="libopus",
    )
    return samples.truncate_copy(full, tmp_path / "cut.webm")


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


def _random_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "noise.mov"
    # Deterministic noise without NULs or a text-like look, starting with no known magic.
    path.write_bytes(bytes((i * 7919 + 13) % 251 + 1 for i in range(50_000)))
    return path


def _single_frame_video(tmp_path: Path) -> Path:
    return samples.write_video(tmp_path / "blip.mp4", width=320, height=240, seconds=0.04)


def _hls_playlist_upload(tmp_path: Path) -> Path:
    # An HLS playlist pointing elsewhere: the classic trick to make a server's ffmpeg
    # fetch URLs or read local files. The demuxer whitelist must refuse it.
    path = tmp_path / "evil.mp4"
    path.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    )
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_text, r"^not a video file: it looks like a text document$"),
        (_png, r"^this is an image, not a video$"),
        (_jpeg_named_like_a_video, r"^this is an image, not a video$"),
        (_audio_only, r"^the file has no video track$"),
        (_truncated_mp4_without_index, r"damaged or incomplete \(was the upload cut short\?\)"),
        (_truncated_faststart_mp4, r"incomplete: it should last 2\.0 s but its data stops at"),
        (_truncated_webm, r"incomplete: it should last 2\.0 s but its data stops at"),
        (_empty, r"^the file is empty$"),
        (_random_bytes, r"^not a video file: the format was not recognised"),
        (_single_frame_video, r"too short"),
        (_hls_playlist_upload, r"^not a video file"),
    ],
)
def test_probe_rejects_unusable_files_with_a_clear_reason(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(MediaRejected, match=reason) as excinfo:
        probe_video(path)
    assert excinfo.value.reason == str(excinfo.value)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the probe decodes a single frame."""

    def refuse(*_: object) -> None:
        raise AssertionError("the probe decoded a frame of a file it should have refused")

    monkeypatch.setattr(probe, "_decode_start", refuse)


@pytest.mark.usefixtures("no_decoding")
def test_a_huge_picture_is_refused_from_its_headers_before_decoding(huge_frame: Path) -> None:
    assert huge_frame.stat().st_size < 1024 * 1024
    with pytest.raises(MediaRejected, match=r"picture is too large \(16000x16000\)"):
        probe_video(huge_frame)


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (MediaLimits(max_side=600), r"too large \(640x360\).* 600 pixels on a side"),
        (MediaLimits(max_pixels=640 * 359), r"too large \(640x360\).* 229,760 pixels in all"),
        (MediaLimits(max_seconds=1.5), r"too long \(2\.0 s\); the longest accepted is 1\.5 s"),
        (MediaLimits(max_seconds=1), r"too long \(2\.0 s\); the longest accepted is 1\.0 s"),
        (MediaLimits(max_frame_rate=24), r"frame rate is too high \(30 frames per second\)"),
        (MediaLimits(max_streams=1), r"too many tracks \(2\); at most 1"),
    ],
)
@pytest.mark.usefixtures("no_decoding")
def test_what_exceeds_the_limits_is_refused_before_decoding(
    cases: dict[str, Case], limits: MediaLimits, reason: str
) -> None:
    with pytest.raises(MediaRejected, match=reason):
        probe_video(cases["mpegts"].path, limits)


def test_a_long_side_is_refused_even_when_the_area_is_small(tmp_path: Path) -> None:
    path = samples.write_video(tmp_path / "strip.mp4", width=4200, height=64, audio_codec=None)
    with pytest.raises(MediaRejected, match=r"too large \(4200x64\)"):
        probe_video(path)
    probe_video(path, MediaLimits(max_side=4200))


def test_missing_file_is_an_error_not_a_rejection(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe_video(tmp_path / "nope.mp4")


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(SNIFF_BYTES)


@pytest.mark.parametrize(
    ("filename", "options"),
    [
        ("a.mp4", {}),
        ("a.mov", {"container_format": "mov"}),
        ("a.webm", {"video_codec": "libvpx-vp9", "audio_codec": "libopus"}),
        ("a.mkv", {"container_format": "matroska"}),
        ("a.avi", {"container_format": "avi", "video_codec": "mpeg4", "audio_codec": "mp3"}),
        ("a.ts", {"container_format": "mpegts"}),
        ("a.flv", {"container_format": "flv"}),
    ],
)
def test_sniff_recognises_accepted_containers(
    tmp_path: Path, filename: str, options: dict[str, str]
) -> None:
    path = samples.write_video(tmp_path / filename, width=160, height=120, seconds=0.5, **options)
    assert sniff_is_media_container(_head(path))


def test_sniff_recognises_ogg(tmp_path: Path) -> None:
    path = tmp_path / "a.ogg"
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.sample_rate = 48000
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert sniff_is_media_container(_head(path))


@pytest.mark.parametrize(
    "make",
    [_text, _png, _jpeg_named_like_a_video, _empty, _random_bytes, _hls_playlist_upload],
)
def test_sniff_refuses_non_containers(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    assert not sniff_is_media_container(_head(make(tmp_path)))


@pytest.mark.parametrize(
    "head",
    [
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",  # iPhone HEIC photo
        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1",  # AVIF photo
        b"GIF89a\x01\x00\x01\x00",
        b"G" + b"x" * 400,  # a lone 0x47 is not an MPEG-TS stream
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        b"\x00\x00\x00\x00free",  # atom with an impossible size
    ],
)
def test_sniff_refuses_lookalikes(head: bytes) -> None:
    assert not sniff_is_media_container(head)


def test_sniff_accepts_m2ts_and_old_quicktime() -> None:
    packet = b"\x47" + b"\xff" * 187
    m2ts_packet = b"\x00\x00\x00\x00" + packet
    assert sniff_is_media_container(m2ts_packet * 3)
    assert sniff_is_media_container(b"\x00\x00\x00\x08wide\x00\x01\x02\x03mdat")
