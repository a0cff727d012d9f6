"""A screenshot of every view of the web client, desktop and phone: ``make screenshots``.

    python -m tests.web.screenshots [--out screenshots]

Walks the views of ``tests/web/views.py`` (login, room, call, videos, live, the guest's
sign-out warning, banned, lobby, left, not found) with real Chromium pages, a real
server and real WebRTC, at 1366x800 (desktop) and 390x844 (phone), and writes
``<out>/<size>/<nn>-<view>.png`` (what the screen shows) and ``<nn>-<view>-full.png``
(the whole page, scrolled). ``screenshots/`` is not committed.

Like the browser tests it runs in a loopback-only network namespace: started outside
one, it runs itself again inside ``unshare --net`` (it needs root or user namespaces,
and Debian's Chromium: ``make test-deps``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.web import harness
from tests.web.views import VIEWS, tour

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"desktop": (1366, 800), "phone": (390, 844)}
INSIDE = "VIDEOCHAT_SCREENSHOTS_NETNS"
# Fonts loaded and two frames painted since the view appeared.
SETTLED_JS = """
() => document.fonts.ready.then(
  () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))),
)
"""
NETNS = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def _in_namespace(argv: list[str]) -> int:
    """Run this module again inside a new loopback-only network namespace."""
    prefix = NETNS if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", *NETNS[1:]]
    command = [*prefix, sys.executable, "-m", "tests.web.screenshots", *argv]
    return subprocess.run(command, cwd=ROOT, env={**os.environ, INSIDE: "1"}).returncode


def _take_size(browser: Browser, folder: Path, width: int, height: int) -> list[Path]:
    """Every view at one size, with a fresh server (the room list shows this tour's room)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    errors: list[str] = []

    def shoot(name: str, page: Page) -> None:
        stem = f"{VIEWS.index(name) + 1:02d}-{name}"
        page.evaluate(SETTLED_JS)
        page.screenshot(path=str(folder / f"{stem}.png"))
        page.screenshot(path=str(folder / f"{stem}-full.png"), full_page=True)
        written.extend([folder / f"{stem}.png", folder / f"{stem}-full.png"])

    with tempfile.TemporaryDirectory(prefix="screenshots-") as temp:
        server = harness.ServerProcess(Path(temp))
        server.start()
        try:
            tour(browser, server, errors, shoot, width=width, height=height)
        finally:
            harness.close_pages()
            server.stop()
    unexpected = [error for error in errors if "404 (Not Found)" not in error]
    if unexpected:
        print(f"{folder.name}: the pages reported {unexpected}", file=sys.stderr)
    return written


def take(out: Path) -> list[Path]:
    """Every view at every size; the files written."""
    written: list[Path] = []
    with sync_playwright() as pw:
        browser = harness.launch_chromium(pw)
        try:
            for size, (width, height) in SIZES.items():
                written += _take_size(browser, out / size, width, height)
        finally:
            browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    if os.environ.get(INSIDE) != "1":
        return _in_namespace(["--out", str(args.out.resolve())])
    if not harness.CHROMIUM.exists():
        print(f"{harness.CHROMIUM} is missing: run `make test-deps`", file=sys.stderr)
        return 1
    written = take(args.out.resolve())
    print(f"{len(written)} screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
