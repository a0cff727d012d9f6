"""A real Janus for browser scenarios: its interface, its settings, what pages report.

Janus gathers ICE candidates on no loopback interface, and the scenarios' namespace has
only loopback: ``media_interface`` adds a veth pair with ``MEDIA_ADDRESS`` inside the
namespace (both ends stay in it, so still nothing leaves the machine) and removes it
afterwards. A Chromium that sees an interface appear or go aborts its pages' requests
(``ERR_NETWORK_CHANGED``), so ``running`` starts a Chromium of its own once the
interface is there, and closes it (and its pages) before the interface goes.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page

from tests.sfu.janus_server import Janus
from tests.web import harness

VETH = ("vcsfu0", "vcsfu1")
MEDIA_ADDRESS = "10.99.0.1"


def janus() -> Janus:
    """A Janus (not started) with its ports picked: scenarios' settings name them."""
    return Janus(Path(tempfile.mkdtemp(prefix="janus-web-")), ice_address=MEDIA_ADDRESS)


def settings(instance: Janus, *, threshold: int) -> dict[str, str]:
    """The server's ``VIDEOCHAT_SFU__*`` settings for this Janus."""
    return {
        "VIDEOCHAT_SFU__JANUS_URL": instance.api_url,
        "VIDEOCHAT_SFU__ADMIN_URL": instance.admin_url,
        "VIDEOCHAT_SFU__ADMIN_SECRET": instance.admin_secret,
        "VIDEOCHAT_SFU__ROOM_ADMIN_KEY": instance.room_admin_key,
        "VIDEOCHAT_SFU__THRESHOLD": str(threshold),
    }


def link_state(name: str) -> str:
    """``UP``, ``DOWN``, ``LOWERLAYERDOWN``... (sysfs shows the outer namespace's links)."""
    out = subprocess.run(
        ["ip", "-br", "link", "show", "dev", name], capture_output=True, text=True, timeout=10
    )
    fields = out.stdout.split()
    return fields[1] if len(fields) > 1 else ""


@contextlib.contextmanager
def media_interface() -> Iterator[None]:
    """A veth pair with ``MEDIA_ADDRESS``, removed afterwards (later scenarios see lo only)."""

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    ip("link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1])
    try:
        for name in VETH:
            # No IPv6 link-local addresses arriving later (each one a network change).
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1")
        ip("addr", "add", f"{MEDIA_ADDRESS}/24", "dev", VETH[0])
        ip("link", "set", VETH[0], "up")
        ip("link", "set", VETH[1], "up")
        # Settled (carrier on) before any Chromium starts watching the network.
        harness.wait_for(
            "the veth pair to come up",
            lambda: all(" UP " in f" {link_state(name)} " for name in VETH),
            timeout=10,
        )
        yield
    finally:
        ip("link", "del", VETH[0])


@contextlib.contextmanager
def running(instance: Janus, browser: Browser) -> Iterator[Browser]:
    """The interface, Janus and a Chromium of their own; a failure carries Janus's log."""
    with media_interface():
        own = browser.browser_type.launch(
            executable_path=str(harness.CHROMIUM), args=harness.CHROMIUM_ARGS, timeout=30_000
        )
        instance.start()
        try:
            yield own
        except Exception as error:
            raise harness.ScenarioError(f"{error}\njanus log:\n{instance.log()}") from error
        finally:
            harness.close_pages()  # before Janus stops: their long polls would fail loudly
            own.close()
            instance.stop()


# Every connection of the page (subscriptions by user id, and our publication): the
# selected pair's ports, and whether it carries media each way.
PAIRS_JS = """
async () => {
  const v = window.videochat;
  const out = {};
  const entries = [...v.peers.entries()];
  if (v.sfu?.publisher) entries.push(['publisher', v.sfu.publisher]);
  for (const [name, pc] of entries) {
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((entry) => byId.set(entry.id, entry));
    let pair = null;
    let framesDecoded = 0;
    let framesEncoded = 0;
    stats.forEach((entry) => {
      if (entry.type === 'transport' && entry.selectedCandidatePairId) {
        pair = byId.get(entry.selectedCandidatePairId) ?? pair;
      }
      if (entry.kind !== 'video') return;
      if (entry.type === 'inbound-rtp') framesDecoded += entry.framesDecoded ?? 0;
      if (entry.type === 'outbound-rtp') framesEncoded += entry.framesEncoded ?? 0;
    });
    const local = pair ? byId.get(pair.localCandidateId) : null;
    const remote = pair ? byId.get(pair.remoteCandidateId) : null;
    out[name] = {
      state: pc.connectionState,
      localPort: local?.port ?? null,
      remotePort: remote?.port ?? null,
      remoteAddress: remote ? (remote.address ?? remote.ip ?? null) : null,
      framesDecoded,
      framesEncoded,
    };
  }
  return out;
}
"""

# Each remote video element: its picture size and playback time.
VIDEOS_JS = """
() => Object.fromEntries(
  [...document.querySelectorAll('[data-testid="remote-video"]')].map((video) => [
    video.dataset.userId,
    { width: video.videoWidth, time: video.currentTime, paused: video.paused },
  ]),
)
"""


def playing(page: Page, others: list[str]) -> dict[str, Any]:
    """Every other person's video has a picture and its time advances."""
    first = page.evaluate(VIDEOS_JS)
    if not all(first.get(o, {}).get("width", 0) > 0 for o in others):
        return {}
    time.sleep(0.5)
    second = page.evaluate(VIDEOS_JS)
    advancing = all(second[o]["time"] > first[o]["time"] for o in others)
    return second if advancing else {}
