"""``make screenshots``: every view, desktop and phone, as PNGs in a folder not committed."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.harness import CHROMIUM
from tests.web.screenshots import SIZES
from tests.web.views import VIEWS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.netns]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_make_target_and_the_ignored_folder() -> None:
    dry = subprocess.run(
        ["make", "-n", "screenshots"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "python -m tests.web.screenshots" in dry.stdout
    ignored = subprocess.run(
        ["git", "check-ignore", "screenshots/desktop/01-login.png"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "screenshots/ must not be committed"


def test_every_view_is_shot_at_both_sizes(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{CHROMIUM} is missing", pytrace=False)
        pytest.skip(f"{CHROMIUM} is missing")
    run = subprocess.run(
        [sys.executable, "-m", "tests.web.screenshots", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.strip() == "", run.stderr[-3000:]  # no page reported an error
    for size, (width, height) in SIZES.items():
        for number, view in enumerate(VIEWS, start=1):
            shot = tmp_path / size / f"{number:02d}-{view}.png"
            assert _png_size(shot) == (width, height), shot
            full_width, full_height = _png_size(tmp_path / size / f"{number:02d}-{view}-full.png")
            assert full_width == width and full_height >= height, (size, view)
