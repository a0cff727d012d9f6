"""Six people in one call on the SFU: a real Janus forwards everyone's media.

Janus (Debian's 1.1, ``tests/sfu/janus_server.py``) runs inside the namespace on
127.0.0.1 and the server puts every call on it (``THRESHOLD=0``); browsers talk to its
HTTP API directly with their grants. Every page must see the five others' videos
playing (a picture size, time advancing, frames decoded), and every connection's
selected candidate pair must end at one of Janus's own UDP sockets (read from /proc),
never at another page's port. Then the owner kicks one person, whose tile leaves
every page and whose publication leaves Janus; and a banned person's page is refused
a grant and gets no media.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from playwright.sync_api import Browser, Page

from tests.sfu import janus_server
from tests.web import harness, janus_media

PEOPLE = int(os.environ.get("VIDEOCHAT_SFU_SCENARIO_PEOPLE", "6"))
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"][:PEOPLE]

JANUS = janus_media.janus()
SETTINGS = janus_media.settings(JANUS, threshold=0)

# sfu.js on its own, for a person the server refuses: what it got.
REFUSED_JS = """
async ({ roomId, members }) => {
  const { SfuCall } = await import('/static/js/sfu.js');
  const notes = [];
  const registry = { peers: new Map(), timings: {} };
  const grid = {
    ensureRemote() {},
    setRemoteStream() { notes.push('stream'); },
    setStatus() {},
  };
  const call = new SfuCall({
    roomId, selfId: 'refused', grid, config: {}, tracks: () => [],
    stream: new MediaStream(), registry,
    trace: (userId, event) => notes.push(event),
    notice: (key, text) => notes.push(`${key}: ${text}`),
  });
  call.setMembers(new Set(members));
  await call.start();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  call.close();
  return { notes, peers: registry.peers.size, published: Boolean(registry.sfu?.publisher) };
}
"""

MODERATE_JS = """
async ({ roomId, userId, action }) => {
  const { api } = await import('/static/js/api.js');
  await api.moderate(roomId, userId, action);
}
"""


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    if not janus_server.available():
        return {"skipped": "janus is not installed (apt-get install janus)"}
    with janus_media.running(JANUS, browser) as own:
        return _call(own, server, errors)


def _cpu_of(groups: dict[str, list[int]], seconds: float) -> dict[str, float]:
    """Percent of one core each group of process trees used, over one shared window."""
    from bench import procstat

    before = {name: procstat.tree_cpu(pids) for name, pids in groups.items()}
    time.sleep(seconds)
    return {
        name: round(100 * (procstat.tree_cpu(pids) - before[name]) / seconds, 1)
        for name, pids in groups.items()
    }


def _call(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    pages: dict[str, Page] = {}
    ids: dict[str, str] = {}
    started = time.monotonic()
    owner = harness.new_page(browser, server.url, errors, width=800, height=600)
    owner.goto("/chat")
    ids[NAMES[0]] = harness.join_as_guest(owner, NAMES[0])
    room_id = harness.create_room(owner, "SFU room")
    pages[NAMES[0]] = owner
    for name in NAMES[1:]:
        page = harness.new_page(browser, server.url, errors, width=800, height=600)
        page.goto(f"/chat/rooms/{room_id}")
        ids[name] = harness.join_as_guest(page, name)
        pages[name] = page

    def others(name: str) -> list[str]:
        return [ids[other] for other in pages if other != name]

    videos = {}
    for name, page in pages.items():
        videos[name] = harness.wait_for(
            f"{name} to see {len(pages) - 1} videos playing",
            lambda p=page, n=name: janus_media.playing(p, others(n)),
            timeout=60,
        )
    all_playing_seconds = round(time.monotonic() - started, 1)

    # Media flows through Janus: every selected pair ends at a Janus socket.
    janus_ports = JANUS.udp_ports()
    pairs = {name: page.evaluate(janus_media.PAIRS_JS) for name, page in pages.items()}
    page_ports = {
        report["localPort"] for page_pairs in pairs.values() for report in page_pairs.values()
    }
    remote_ports = {
        report["remotePort"] for page_pairs in pairs.values() for report in page_pairs.values()
    }
    timings = {name: harness.timings(page) for name, page in pages.items()}
    janus_pid = JANUS.pid
    assert janus_pid is not None
    groups = {
        "janus_percent_of_one_core": [janus_pid],
        "chromium_percent_of_one_core": _browser_pids(),
    }
    if server.pid:
        groups["server_percent_of_one_core"] = [server.pid]
    cpu: dict[str, Any] = _cpu_of(groups, 3)
    cpu["load_average"] = os.getloadavg()[0]

    # The owner kicks the last person: their tile leaves every page, their feed Janus.
    kicked = NAMES[-1]
    owner.evaluate(MODERATE_JS, {"roomId": room_id, "userId": ids[kicked], "action": "kick"})
    kick_started = time.monotonic()
    remaining = {name: page for name, page in pages.items() if name != kicked}
    for name, page in remaining.items():
        harness.wait_for(
            f"{kicked}'s tile to leave {name}'s page",
            lambda p=page: (
                harness.remote_video(p, ids[kicked]).count() == 0
                and not p.evaluate("(u) => window.videochat.peers.has(u)", ids[kicked])
            ),
            timeout=10,
        )
    kick_seconds = round(time.monotonic() - kick_started, 2)

    # A banned person is refused a grant: sfu.js gets no connection and no media.
    banned = NAMES[-2]
    owner.evaluate(MODERATE_JS, {"roomId": room_id, "userId": ids[banned], "action": "ban"})
    harness.wait_for(
        f"{banned}'s page to show the banned screen",
        lambda: (
            pages[banned].evaluate(
                "document.querySelector('[data-testid=room-screen]')?.dataset.reason"
            )
            == "banned"
        ),
        timeout=10,
    )
    refused = pages[banned].evaluate(
        REFUSED_JS, {"roomId": room_id, "members": [ids[n] for n in NAMES[:2]]}
    )
    # Those left still see each other.
    still = [n for n in NAMES if n not in (kicked, banned)]
    for name in still:
        left = [ids[o] for o in still if o != name]
        if not left:
            continue
        harness.wait_for(
            f"{name} to still see the others",
            lambda p=pages[name], o=left: janus_media.playing(p, o),
            timeout=20,
        )

    first_frames = _first_frames(timings, ids)
    return {
        "people": len(pages),
        "ids": ids,
        "videos": videos,
        "seconds_until_all_playing": all_playing_seconds,
        "pairs": pairs,
        "janus_ports": sorted(janus_ports),
        "remote_ports": sorted(p for p in remote_ports if p is not None),
        "page_ports": sorted(p for p in page_ports if p is not None),
        "timings": timings,
        "first_frames": first_frames,
        "cpu": cpu,
        "kick_seconds": kick_seconds,
        "refused": refused,
        "screenshots": [harness.save_screenshot(pages[NAMES[0]], "sfu-call")],
    }


def _first_frames(timings: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """Join (entering the room) to the first remote frame, for everyone who joined a call
    already under way; and subscription to first frame for every tile."""
    joined = {}
    for name in list(ids)[1:]:
        values = [
            t["first_frame_after_entering_ms"]
            for t in timings[name].values()
            if t["first_frame_after_entering_ms"] is not None
        ]
        joined[name] = min(values) if values else None
    subscribed = [
        t["first_frame_after_peer_created_ms"]
        for page in timings.values()
        for t in page.values()
        if t["first_frame_after_peer_created_ms"] is not None
    ]
    present = [v for v in joined.values() if v is not None]
    return {
        "join_to_first_remote_frame_ms": joined,
        "join_to_first_remote_frame_median_ms": statistics.median(present) if present else None,
        "subscription_to_first_frame_median_ms": (
            statistics.median(subscribed) if subscribed else None
        ),
    }


def _browser_pids() -> list[int]:
    """Chromium's main processes (children of this one, through Playwright's driver)."""
    from bench import procstat

    return procstat.chromium_roots(os.getpid())
