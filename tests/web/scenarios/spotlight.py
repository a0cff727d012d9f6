"""A shared screen is shown large (a spotlight) with the other tiles as a strip.

Three people; Bob shares his screen (Chromium picks the screen by itself with
--use-fake-ui-for-media-stream). On Alice's and Carol's pages Bob's tile is the
spotlight, several times wider than each tile of the strip; Bob's button reads
"Stop sharing" and stops it, and the grid goes back to equal tiles.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

LAYOUT_JS = """
() => {
  const grid = document.getElementById('video-grid');
  return {
    layout: grid.dataset.layout ?? null,
    tiles: Object.fromEntries([...grid.querySelectorAll('.tile')].map((tile) => {
      const box = tile.getBoundingClientRect();
      return [tile.dataset.userId, {
        spotlight: tile.dataset.spotlight ?? null,
        width: Math.round(box.width),
        height: Math.round(box.height),
      }];
    })),
  };
}
"""


def _layout(page: Page) -> dict[str, Any]:
    layout: dict[str, Any] = page.evaluate(LAYOUT_JS)
    return layout


def _share_button(page: Page) -> dict[str, Any]:
    button = page.get_by_test_id("share-screen")
    return {
        "text": button.inner_text().strip(),
        "name": button.evaluate("(b) => b.textContent"),
        "pressed": button.get_attribute("aria-pressed"),
    }


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    pages: dict[str, Page] = {}
    ids: dict[str, str] = {}
    alice = harness.new_page(browser, server.url, errors, width=1366, height=800)
    alice.goto("/chat")
    ids["alice"] = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Spotlight room")
    pages["alice"] = alice
    for name in ("bob", "carol"):
        page = harness.new_page(browser, server.url, errors, width=1366, height=800)
        page.goto(f"/chat/rooms/{room_id}")
        ids[name] = harness.join_as_guest(page, name)
        pages[name] = page
    for name, page in pages.items():
        harness.wait_for_media(page, [ids[o] for o in pages if o != name], timeout=30)

    before = _layout(alice)
    bob = pages["bob"]
    button_before = _share_button(bob)
    bob.get_by_test_id("share-screen").click()
    spotlights = {}
    for name in ("alice", "carol"):
        spotlights[name] = harness.wait_for(
            f"bob's share in the spotlight on {name}'s page",
            lambda page=pages[name]: (
                (layout := _layout(page))["layout"] == "spotlight"
                and layout["tiles"][ids["bob"]]["spotlight"] == "true"
                and layout
            ),
        )
    sharing_button = harness.wait_for(
        "the stop button", lambda: (b := _share_button(bob))["pressed"] == "true" and b
    )
    harness.save_screenshot(alice, "spotlight-alice")
    bob.get_by_test_id("share-screen").click()
    stopped_button = harness.wait_for(
        "the share button again", lambda: (b := _share_button(bob))["pressed"] == "false" and b
    )
    after = harness.wait_for(
        "the grid again on alice's page",
        lambda: (layout := _layout(alice))["layout"] == "grid" and layout,
    )
    return {
        "ids": ids,
        "before": before,
        "button_before": button_before,
        "spotlights": spotlights,
        "sharing_button": sharing_button,
        "stopped_button": stopped_button,
        "after": after,
    }
