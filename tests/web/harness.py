"""What every browser scenario needs: servers, Chromium, page helpers, measurements.

Scenarios run in one process inside a loopback-only network namespace
(``tests/web/conftest.py`` starts it with ``python -m tests.web.scenarios NAME...``), so
the servers and the browser here only ever see 127.0.0.1. Each scenario prints one
line, ``RESULT_MARK`` + JSON, that its pytest test reads and asserts on.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import av
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Playwright,
    sync_playwright,
)

from tests.processes import free_port, log_tail, stop_process

CHROMIUM = Path("/usr/bin/chromium")
RESULT_MARK = "SCENARIO-RESULT "
# How much longer than its nominal timeout a wait may take (SCENARIO_PATIENCE=1: as
# written): on a loaded 2-core machine Chromium can be several times slower.
PATIENCE = float(os.environ.get("SCENARIO_PATIENCE", "2"))

# TESTING.md: the fake devices (without both no call connects), loopback ICE, and
# quiet hygiene for a closed network.
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    # Fewer frames from the fake camera (its default is 20 a second): every page encodes
    # and decodes less, and the scenarios ran CPU-bound on two cores.
    "--use-fake-device-for-media-stream=fps=8",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

# The scenarios' camera is a 320x240 one: the fake device otherwise delivers the 640x480
# the client asks for, and every page of a call encodes and decodes that. The six-person
# SFU call took 58 s at 640x480 and 36 s at 320x240 (CPU-bound on two cores either way).
# The client's own constraints still go to getUserMedia, capped as a small webcam would
# answer them. None: the fake device as it is (bench.calls measures the client's sizes).
CAMERA_LIMIT: tuple[int, int] | None = (320, 240)
CAMERA_LIMIT_JS = """
([maxWidth, maxHeight]) => {
  const capture = MediaDevices.prototype.getUserMedia;
  const capped = (value, max) => {
    const asked = value === undefined ? {} : typeof value === 'object' ? value : { ideal: value };
    return { ...asked, max: Math.min(asked.max ?? max, max) };
  };
  MediaDevices.prototype.getUserMedia = function getUserMedia(constraints) {
    if (!constraints?.video) return capture.call(this, constraints);
    const video = constraints.video === true ? {} : { ...constraints.video };
    video.width = capped(video.width, maxWidth);
    video.height = capped(video.height, maxHeight);
    return capture.call(this, { ...constraints, video });
  };
}
"""

# Browser-side reading of every peer connection: the nominated candidate pair's
# addresses and the video frames decoded, per remote user id.
PEER_REPORT_JS = """
(async () => {
  const report = {};
  for (const [userId, pc] of window.videochat.peers) {
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((entry) => byId.set(entry.id, entry));
    let pair = null;
    let framesDecoded = 0;
    let videoInbound = 0;
    stats.forEach((entry) => {
      if (entry.type === 'transport' && entry.selectedCandidatePairId) {
        pair = byId.get(entry.selectedCandidatePairId) ?? pair;
      }
      if (entry.type === 'inbound-rtp' && entry.kind === 'video') {
        videoInbound += 1;
        framesDecoded += entry.framesDecoded ?? 0;
      }
    });
    if (!pair) {
      stats.forEach((entry) => {
        const chosen = entry.nominated && entry.state === 'succeeded';
        if (entry.type === 'candidate-pair' && chosen) pair = entry;
      });
    }
    const videoSender = pc.getSenders().find((sender) => sender.track?.kind === 'video');
    const local = pair ? byId.get(pair.localCandidateId) : null;
    const remote = pair ? byId.get(pair.remoteCandidateId) : null;
    report[userId] = {
      connectionState: pc.connectionState,
      nominated: Boolean(pair?.nominated),
      pairState: pair?.state ?? null,
      localAddress: local ? (local.address ?? local.ip ?? null) : null,
      remoteAddress: remote ? (remote.address ?? remote.ip ?? null) : null,
      localType: local?.candidateType ?? null,
      remoteType: remote?.candidateType ?? null,
      videoInbound,
      framesDecoded,
      videoMaxBitrate: videoSender?.getParameters().encodings?.[0]?.maxBitrate ?? null,
    };
  }
  return report;
})()
"""

# Timings the client records (performance.now() milliseconds): from entering the
# room, and from creating the peer connection, to "connected" and the first frame.
TIMINGS_JS = """
(() => {
  const v = window.videochat;
  const since = (end, start) => (end != null && start != null ? Math.round(end - start) : null);
  const out = {};
  for (const [userId, t] of Object.entries(v.timings)) {
    out[userId] = {
      connected_after_entering_ms: since(t.connected, v.enteredAt),
      first_frame_after_entering_ms: since(t.firstFrame, v.enteredAt),
      connected_after_peer_created_ms: since(t.connected, t.created),
      first_frame_after_peer_created_ms: since(t.firstFrame, t.created),
    };
  }
  return out;
})()
"""

# Variance of the grey levels of the current frame of a video element, drawn on a
# canvas: the decoded picture itself, overlays excluded.
VIDEO_VARIANCE_JS = """
(video) => {
  if (!video.videoWidth) return 0;
  const canvas = document.createElement('canvas');
  canvas.width = 160;
  canvas.height = 120;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(video, 0, 0, canvas.width, canvas.height);
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  let sum = 0;
  let squares = 0;
  const count = data.length / 4;
  for (let i = 0; i < data.length; i += 4) {
    const grey = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    sum += grey;
    squares += grey * grey;
  }
  const mean = sum / count;
  return squares / count - mean * mean;
}
"""

# While screenshotting a tile, hide what is drawn over its video (name, status).
# Through the hidden attribute: the page's CSP refuses injected inline styles.
SET_OVERLAYS_HIDDEN_JS = """
(video, hidden) => {
  for (const node of video.closest('.tile').querySelectorAll('figcaption, .avatar')) {
    node.hidden = hidden;
  }
}
"""


# Every page a scenario opened, so a failure can report what each one saw.
_open_pages: list[Page] = []


class ScenarioError(AssertionError):
    """A scenario step did not happen in time."""


class ServerProcess:
    """The videochat server on SQLite and the in-process broker, as a child process.

    ``settings`` are extra ``VIDEOCHAT_*`` environment variables. It keeps its port
    and its data across ``stop()`` and ``start()``.
    """

    def __init__(self, workdir: Path, settings: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        # Only our settings: nothing from the caller's environment (a Redis URL, say).
        self._env = {
            key: value for key, value in os.environ.items() if not key.startswith("VIDEOCHAT_")
        }
        self._env.update(
            VIDEOCHAT_ENVIRONMENT="test",
            VIDEOCHAT_DATA_DIR=str(workdir / "data"),
            VIDEOCHAT_RATE_LIMIT__ENABLED="false",
            VIDEOCHAT_LOG_LEVEL="WARNING",
        )
        self._env.update(settings or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (benchmarks read its /proc)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the server process without waiting for it."""
        command = [sys.executable, "-m", "videochat.cli", "serve"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,  # away from any .env file in the checkout
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        """Until ``/health`` answers 200."""
        # Generous: on a busy 2-core machine the imports alone can take many seconds.
        deadline = time.monotonic() + 60 * PATIENCE
        while True:
            if self._process is None or self._process.poll() is not None:
                raise ScenarioError(f"server exited: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ScenarioError(f"server did not start: {self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def log(self) -> str:
        return log_tail(self.log_path, 3000)


def launch_chromium(playwright: Playwright, *extra_args: str) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args], timeout=30_000
    )


# Screenshots of what the scenarios saw; a CI job can keep them (tests/web/README.md).
ARTIFACTS = (
    Path(
        os.environ.get(
            "VIDEOCHAT_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"
        )
    )
    / "web"
)


def save_screenshot(page: Page, name: str) -> str:
    """Save the whole page as ``<name>.png`` among the artifacts; returns the path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return str(path)


def new_page(
    browser: Browser,
    base_url: str,
    errors: list[str],
    *,
    width: int = 1000,
    height: int = 700,
    bypass_csp: bool = False,
) -> Page:
    """A page in its own context (its own localStorage: its own person).

    ``bypass_csp``: the page takes injected scripts (axe-core) that the CSP would refuse.
    """
    context: BrowserContext = browser.new_context(
        base_url=base_url, viewport={"width": width, "height": height}, bypass_csp=bypass_csp
    )
    context.set_default_timeout(15_000)
    if CAMERA_LIMIT is not None:
        context.add_init_script(f"({CAMERA_LIMIT_JS})({json.dumps(list(CAMERA_LIMIT))})")
    page = context.new_page()
    _open_pages.append(page)
    _watch(page, errors)
    return page


def new_tab(page: Page, errors: list[str]) -> Page:
    """Another page in the same context as ``page``: the same person in a second tab."""
    tab = page.context.new_page()
    _open_pages.append(tab)
    _watch(tab, errors)
    return tab


def _watch(page: Page, errors: list[str]) -> None:
    """Collect the page's errors, warnings and unexpected dialogs into ``errors``."""
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type in {"warning", "error"}:
            errors.append(f"console.{message.type}: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        # The client asks before deleting a message; any other dialog is a finding
        # (an XSS would call alert()).
        if dialog.type == "confirm" and dialog.message.startswith("Delete this message"):
            dialog.accept()
            return
        errors.append(f"dialog: {dialog.type} {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("dialog", on_dialog)


def join_as_guest(page: Page, name: str, *, join: bool = True) -> str:
    """Pick a guest name on the sign-in view; returns the new user's id.

    On a room's address the room opens next: with ``join`` its pre-join screen is
    passed with the Join button (``join_call``).
    """
    page.get_by_test_id("guest-name").fill(name)
    page.get_by_test_id("join-as-guest").click()
    found: str = wait_for(
        "the guest account", lambda: page.evaluate("window.videochat.user?.id ?? null")
    )
    if join and "/chat/rooms/" in page.url:
        join_call(page)
    return found


def create_room(page: Page, name: str, *, join: bool = True) -> str:
    """Create a room through the lobby form; the page ends up in it. Returns its id.

    With ``join`` the pre-join screen is passed with the Join button (``join_call``).
    """
    page.get_by_test_id("room-name").fill(name)
    page.get_by_test_id("create-room").click()
    page.wait_for_url("**/chat/rooms/*")
    if join:
        join_call(page)
    return page.url.rstrip("/").rsplit("/", 1)[1]


# Which view a room's address led to: the pre-join screen once its Join button works,
# or the room, the knock view or a screen; null while it is still loading.
ROOM_VIEW_JS = """
() => {
  const view = document.querySelector('main [data-view]:not([hidden])')?.dataset.view ?? null;
  if (view === 'prejoin') return document.getElementById('prejoin-join').disabled ? null : view;
  return ['room', 'knock', 'error'].includes(view) ? view : null;
}
"""


def join_call(page: Page) -> str:
    """Press Join on the pre-join screen a room's address shows; returns where it led.

    Nothing to press when the room opened some other way (a reload of a tab that was
    in the call goes straight back in; a private room shows the knock view first).
    """
    view: str = wait_for("the room's first view", lambda: page.evaluate(ROOM_VIEW_JS))
    if view == "prejoin":
        page.get_by_test_id("prejoin-join").click()
        wait_for("the room after Join", lambda: page.evaluate(ROOM_VIEW_JS) == "room")
        view = "room"
    return view


def enter_room(page: Page, room_id: str) -> str:
    """Open a room by its address (signed in already) and join its call."""
    page.goto(f"/chat/rooms/{room_id}")
    return join_call(page)


# The page's next answer to a fetch whose URL matches a pattern is held until released:
# how a slow answer, overtaken by a newer one or by a frame, reaches the page. ``read``
# is set once the page has had its JSON and run what follows (a task later).
_HOLD_NEXT_ANSWER_JS = """(pattern) => {
  const held = { caught: false, read: false };
  const gate = new Promise((resolve) => { held.release = resolve; });
  const matches = new RegExp(pattern);
  const fetch = window.fetch;
  let waiting = true;
  window.fetch = async (...args) => {
    const response = await fetch(...args);
    if (!waiting || !matches.test(String(args[0]))) return response;
    waiting = false;
    held.caught = true;
    await gate;
    const json = response.json.bind(response);
    response.json = async () => {
      const body = await json();
      setTimeout(() => { held.read = true; }, 0);
      return body;
    };
    return response;
  };
  window.heldAnswer = held;
}"""


def hold_next_answer(page: Page, pattern: str) -> None:
    """Hold the page's next fetch answer whose URL matches ``pattern`` (a JS regex)."""
    page.evaluate(_HOLD_NEXT_ANSWER_JS, pattern)


def answer_held(page: Page) -> bool:
    """Whether the held answer has arrived (the server answered; the page waits)."""
    caught: bool = page.evaluate("heldAnswer.caught")
    return caught


def release_held_answer(page: Page) -> None:
    """Let the held answer through; return once the page has read it."""
    page.evaluate("heldAnswer.release()")
    wait_for("the held answer to be read", lambda: page.evaluate("heldAnswer.read"))


def wait_for(
    what: str, probe: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.1
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with the last value.

    The timeout is stretched by ``PATIENCE``: a wait that succeeds returns as soon as it
    can, so only a failure takes longer, and on a loaded 2-core machine (the test suite's
    other workers beside a six-page call) Chromium can be several times slower.
    """
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise ScenarioError(
                f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)


def peer_report(page: Page) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = page.evaluate(PEER_REPORT_JS)
    return report


def wait_for_media(page: Page, others: list[str], *, timeout: float = 20.0) -> dict[str, Any]:
    """Every one of ``others`` connected to this page with decoded video frames."""

    def ready() -> dict[str, Any] | None:
        report = peer_report(page)
        good = all(
            report.get(other, {}).get("connectionState") == "connected"
            and report[other]["framesDecoded"] > 0
            for other in others
        )
        return report if good else None

    try:
        result: dict[str, Any] = wait_for("connected peers with frames", ready, timeout=timeout)
    except ScenarioError as error:
        raise ScenarioError(f"{error}; report: {peer_report(page)}") from None
    return result


def remote_video(page: Page, other: str) -> Locator:
    return page.locator(f'[data-testid="remote-video"][data-user-id="{other}"]')


def screenshot_variance(locator: Locator) -> float:
    """Grey-level variance of a screenshot of the element, overlays hidden."""
    locator.evaluate(SET_OVERLAYS_HIDDEN_JS, True)
    try:
        png = locator.screenshot(timeout=10_000)
    finally:
        locator.evaluate(SET_OVERLAYS_HIDDEN_JS, False)
    with av.open(io.BytesIO(png), format="png_pipe", mode="r") as container:
        frame = next(container.decode(video=0)).reformat(format="gray")
    plane = frame.planes[0]
    data = bytes(plane)
    values = [
        data[row * plane.line_size + column]
        for row in range(0, frame.height, 2)
        for column in range(0, frame.width, 2)
    ]
    mean = sum(values) / len(values)
    return sum((value - mean) ** 2 for value in values) / len(values)


def picture_check(page: Page, other: str) -> dict[str, float]:
    """How much picture the tile of ``other`` shows: screenshot and decoded-frame variance."""
    video = remote_video(page, other)
    started = time.monotonic()
    shot = screenshot_variance(video)
    middle = time.monotonic()
    frame = float(video.evaluate(VIDEO_VARIANCE_JS))
    return {
        "screenshot_variance": round(shot, 1),
        "frame_variance": round(frame, 1),
        "screenshot_seconds": round(middle - started, 2),
        "frame_seconds": round(time.monotonic() - middle, 2),
    }


def timings(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate(TIMINGS_JS)
    return value


def send_chat(page: Page, text: str) -> None:
    """Send a chat message through the form (on a phone, the chat panel is opened first)."""
    show_chat = page.get_by_test_id("show-chat")
    if show_chat.is_visible() and show_chat.get_attribute("aria-pressed") != "true":
        show_chat.click()
    page.get_by_test_id("chat-input").fill(text)
    page.get_by_test_id("chat-send").click()


def wait_for_chat(pages: list[Page], text: str, *, timeout: float = 10.0) -> None:
    """Until every page shows a chat message with exactly this text."""
    for page in pages:

        def shown(page: Page = page) -> bool:
            return text in chat_texts(page)

        wait_for(f"chat message {text!r}", shown, timeout=timeout)


def message(page: Page, text: str) -> Locator:
    """The chat message (list item) whose text is exactly ``text``."""
    return page.get_by_test_id("chat-message").filter(
        has=page.locator(".message-content", has_text=text)
    )


def notice_text(page: Page, key: str) -> str | None:
    """The text of the message above the call with this key, if shown."""
    text: str | None = page.evaluate(
        "(key) => document.querySelector(`#call-notices [data-key='${key}']`)?.textContent ?? null",
        key,
    )
    return text


def chat_texts(page: Page) -> list[str]:
    texts: list[str] = page.locator(
        '[data-testid="chat-message"] .message-content'
    ).all_text_contents()
    return texts


def _call_traces() -> dict[str, Any]:
    """The client's call log of every page still open (for a failure report)."""
    traces: dict[str, Any] = {}
    for index, page in enumerate(_open_pages):
        with contextlib.suppress(Exception):
            traces[f"page{index}"] = page.evaluate(
                "({user: window.videochat.user?.username, url: location.pathname,"
                " trace: window.videochat.trace})"
            )
    return traces


def close_pages() -> None:
    """Close every page a scenario opened (its people leave; its CPU is freed)."""
    while _open_pages:
        page = _open_pages.pop()
        with contextlib.suppress(Exception):
            page.context.close()


Scenario = Callable[[Browser, ServerProcess, list[str]], dict[str, Any]]


class _Servers:
    """One server per distinct settings, shared by the scenarios that use them.

    All are launched up front, so their start-up overlaps the first scenarios.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._servers: dict[str, ServerProcess] = {}

    @staticmethod
    def _key(name: str, module: ModuleType) -> str:
        # A server a scenario may stop and start is never handed to another one.
        if getattr(module, "OWN_SERVER", False):
            return f"own:{name}"
        return json.dumps(getattr(module, "SETTINGS", {}), sort_keys=True)

    def launch_for(self, scenarios: dict[str, ModuleType]) -> None:
        for name, module in scenarios.items():
            key = self._key(name, module)
            if key not in self._servers:
                workdir = Path(tempfile.mkdtemp(prefix="server-", dir=self._root))
                server = ServerProcess(workdir, getattr(module, "SETTINGS", {}))
                server.launch()
                self._servers[key] = server

    def ready_for(self, name: str, module: ModuleType) -> ServerProcess:
        server = self._servers[self._key(name, module)]
        server.wait_ready()
        return server

    def stop_all(self) -> None:
        for server in self._servers.values():
            server.stop()


def _run_one(name: str, module: ModuleType, browser: Browser, servers: _Servers) -> dict[str, Any]:
    scenario: Scenario = module.scenario
    started = time.monotonic()
    errors: list[str] = []
    server: ServerProcess | None = None
    try:
        server = servers.ready_for(name, module)
        result = {"ok": True, **scenario(browser, server, errors)}
    except Exception as error:
        result = {
            "ok": False,
            "error": f"{type(error).__name__}: {error}",
            "call_traces": _call_traces(),
            "traceback": traceback.format_exc()[-4000:],
            "server_log": server.log() if server else "",
        }
    finally:
        close_pages()
    result["scenario"] = name
    result["page_errors"] = errors
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def run_scenarios(names: list[str]) -> None:
    """Run scenarios one after another in one Chromium; print a result line for each.

    Scenarios with the same ``SETTINGS`` share a server (each makes its own rooms
    and people); one with ``OWN_SERVER`` gets a fresh one it may stop and start.
    """
    modules = {name: importlib.import_module(f"tests.web.scenarios.{name}") for name in names}
    with tempfile.TemporaryDirectory(prefix="videochat-web-") as tmp:
        servers = _Servers(Path(tmp))
        try:
            servers.launch_for(modules)
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                try:
                    for name, module in modules.items():
                        result = _run_one(name, module, browser, servers)
                        print(RESULT_MARK + json.dumps(result), flush=True)
                finally:
                    browser.close()
        finally:
            servers.stop_all()
