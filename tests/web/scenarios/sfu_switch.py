"""A mesh call that grows past the threshold moves onto the SFU, and stays there.

``THRESHOLD=2``: two people call in a mesh (their peer connections end at each other's
ports, no publication); a third joins and all three move onto Janus (every connection
ends at a Janus socket, everyone publishes once and sees the two others). When the
third leaves, the two left stay on the SFU and keep seeing each other.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser, Page

from tests.sfu import janus_server
from tests.web import harness, janus_media

JANUS = janus_media.janus()
SETTINGS = janus_media.settings(JANUS, threshold=2)


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    if not janus_server.available():
        return {"skipped": "janus is not installed (apt-get install janus)"}
    with janus_media.running(JANUS, browser) as own:
        return _switch(own, server, errors)


def _through_janus(page: Page, others: list[str]) -> dict[str, Any] | None:
    """The page's report once it publishes and each other person comes from Janus."""
    pairs: dict[str, Any] = page.evaluate(janus_media.PAIRS_JS)
    ports = JANUS.udp_ports()
    wanted = [*others, "publisher"]
    ready = all(
        pairs.get(name, {}).get("state") == "connected" and pairs[name]["remotePort"] in ports
        for name in wanted
    )
    return pairs if ready and janus_media.playing(page, others) else None


def _switch(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    ids: dict[str, str] = {}
    pages: dict[str, Page] = {}
    alice = harness.new_page(browser, server.url, errors, width=800, height=600)
    alice.goto("/chat")
    ids["alice"] = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Growing call")
    pages["alice"] = alice
    bob = harness.new_page(browser, server.url, errors, width=800, height=600)
    bob.goto(f"/chat/rooms/{room_id}")
    ids["bob"] = harness.join_as_guest(bob, "bob")
    pages["bob"] = bob

    # Two people: a mesh, straight between the pages.
    mesh = {}
    for name, other in (("alice", "bob"), ("bob", "alice")):
        mesh[name] = harness.wait_for_media(pages[name], [ids[other]], timeout=30)[ids[other]]
    mesh_pairs = {name: page.evaluate(janus_media.PAIRS_JS) for name, page in pages.items()}
    janus_ports_in_mesh = sorted(JANUS.udp_ports())
    published_in_mesh = [
        name for name, page in pages.items() if page.evaluate("Boolean(window.videochat.sfu)")
    ]

    carol = harness.new_page(browser, server.url, errors, width=800, height=600)
    carol.goto(f"/chat/rooms/{room_id}")
    ids["carol"] = harness.join_as_guest(carol, "carol")
    pages["carol"] = carol
    started = time.monotonic()
    on_sfu = {}
    for name, page in pages.items():
        others = [ids[o] for o in pages if o != name]
        on_sfu[name] = harness.wait_for(
            f"{name} on the SFU",
            lambda p=page, o=others: _through_janus(p, o),
            timeout=60,
        )
    switch_seconds = round(time.monotonic() - started, 1)
    toggles = _toggles(alice, bob, ids["bob"])

    # Carol leaves: two people again, and still on the SFU.
    carol.get_by_test_id("leave-call").click()
    del pages["carol"]
    after = {}
    for name, other in (("alice", "bob"), ("bob", "alice")):
        page = pages[name]
        harness.wait_for(
            f"carol's tile to leave {name}'s page",
            lambda p=page: harness.remote_video(p, ids["carol"]).count() == 0,
            timeout=15,
        )
        after[name] = harness.wait_for(
            f"{name} still on the SFU",
            lambda p=page, o=ids[other]: _through_janus(p, [o]),
            timeout=20,
        )
    return {
        "ids": ids,
        "mesh": mesh,
        "mesh_pairs": mesh_pairs,
        "janus_ports_in_mesh": janus_ports_in_mesh,
        "published_in_mesh": published_in_mesh,
        "on_sfu": on_sfu,
        "after_leaving": after,
        "switch_seconds": switch_seconds,
        "toggles": toggles,
    }


def _tile_video(page: Page, other: str) -> str | None:
    state: str | None = page.evaluate(
        "(u) => document.querySelector(`.tile[data-user-id='${u}']`)?.dataset.video ?? null", other
    )
    return state


def _size(page: Page, other: str) -> list[int] | None:
    size: list[int] | None = harness.remote_video(page, other).evaluate(
        "(video) => (video.videoWidth ? [video.videoWidth, video.videoHeight] : null)"
    )
    return size


def _frames(page: Page, other: str) -> int:
    frames: int = page.evaluate(janus_media.PAIRS_JS)[other]["framesDecoded"]
    return frames


def _toggles(alice: Page, bob: Page, bob_id: str) -> dict[str, Any]:
    """Bob's camera off and on, then his screen and back, as Alice sees them on the SFU."""
    bob.get_by_test_id("toggle-camera").click()
    harness.wait_for("bob's camera off", lambda: _tile_video(alice, bob_id) == "off")
    bob.get_by_test_id("toggle-camera").click()
    harness.wait_for("bob's camera on", lambda: _tile_video(alice, bob_id) == "on")
    before = _frames(alice, bob_id)
    resumed = harness.wait_for(
        "new frames from bob's camera",
        lambda: (n := _frames(alice, bob_id)) > before + 5 and n,
        timeout=15,
    )
    bob.get_by_test_id("share-screen").click()
    screen = harness.wait_for(
        "bob's screen (not 4:3 like the camera)",
        lambda: (size := _size(alice, bob_id)) and abs(size[0] / size[1] - 4 / 3) > 0.05 and size,
        timeout=15,
    )
    bob.get_by_test_id("share-screen").click()
    camera = harness.wait_for(
        "bob's camera again",
        lambda: (size := _size(alice, bob_id)) and abs(size[0] / size[1] - 4 / 3) < 0.05 and size,
        timeout=15,
    )
    return {"frames_before": before, "frames_after": resumed, "screen": screen, "camera": camera}
