"""On a phone (390x844) the call controls stay in reach and the page is one screen.

Bob joins on a phone-sized page a room whose chat has history. The page is no
taller than the screen; the bar with microphone, camera, share, chat, people and
leave is in the viewport; the chat and the people open as panels in place of the
call, and scrolling the chat leaves Leave where it is. A message that arrives while
the chat is closed shows on the Chat button. Alice's desktop page keeps the call
and the sidebar side by side, without the panel buttons.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

PHONE = {"width": 390, "height": 844}
BAR = ["toggle-mic", "toggle-camera", "share-screen", "show-chat", "show-people", "leave-call"]

LAYOUT_JS = """
(ids) => {
  const inView = (el) => {
    if (!el) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0
      && r.bottom <= window.innerHeight && r.right <= window.innerWidth;
  };
  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
  return {
    document_height: document.documentElement.scrollHeight,
    document_width: document.documentElement.scrollWidth,
    scroll_y: window.scrollY,
    in_view: Object.fromEntries(ids.map((id) => [id, inView(byTestId(id))])),
    grid_shown: inView(document.getElementById('video-grid')),
    chat_input_in_view: inView(byTestId('chat-input')),
    messages_in_view: inView(document.getElementById('message-list')),
    people_in_view: inView(document.getElementById('participant-list')),
    sidebar_shown: getComputedStyle(document.querySelector('.sidebar')).display !== 'none',
    messages_scroll_top: Math.round(document.getElementById('message-list').scrollTop),
    unread: document.getElementById('chat-unread').hidden
      ? null : document.getElementById('chat-unread').textContent,
    chat_name: byTestId('show-chat').textContent.trim(),
  };
}
"""


def _layout(page: Page) -> dict[str, Any]:
    layout: dict[str, Any] = page.evaluate(LAYOUT_JS, BAR)
    return layout


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors, width=1366, height=800)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Phone room")
    for number in range(40):
        harness.send_chat(alice, f"history line {number}")
    harness.wait_for_chat([alice], "history line 39")

    bob = harness.new_page(browser, server.url, errors, **PHONE)
    bob.goto(f"/chat/rooms/{room_id}")
    harness.join_as_guest(bob, "bob", join=False)
    harness.wait_for("bob's pre-join screen", lambda: bob.get_by_test_id("prejoin").is_visible())
    prejoin = {
        "width": bob.evaluate("document.documentElement.scrollWidth"),
        "join_visible": bob.get_by_test_id("prejoin-join").is_visible(),
    }
    harness.join_call(bob)
    harness.wait_for_media(bob, [alice_id])
    in_call = _layout(bob)

    bob.get_by_test_id("show-chat").click()
    harness.wait_for("bob's chat panel", lambda: _layout(bob)["chat_input_in_view"])
    harness.wait_for_chat([bob], "history line 39")
    chat_open = _layout(bob)
    # Scroll the chat back (and try to scroll the page): the bar stays put.
    bob.locator("#message-list").hover()
    for _ in range(6):
        bob.mouse.wheel(0, -600)
    scrolled_back = harness.wait_for(
        "the chat scrolled back",
        lambda: (
            (layout := _layout(bob))["messages_scroll_top"] < chat_open["messages_scroll_top"]
            and layout
        ),
    )
    bob.mouse.wheel(0, 3000)
    bob.keyboard.press("End")
    after_scroll = _layout(bob)
    harness.send_chat(bob, "from the phone")
    harness.wait_for_chat([alice, bob], "from the phone")

    bob.get_by_test_id("show-people").click()
    harness.wait_for("bob's people panel", lambda: _layout(bob)["people_in_view"])
    people_open = _layout(bob)

    # Back to the call; a message that arrives meanwhile counts on the Chat button.
    bob.get_by_test_id("show-people").click()
    harness.wait_for("bob's call again", lambda: _layout(bob)["grid_shown"])
    harness.send_chat(alice, "are you there?")
    unread = harness.wait_for("the unread count", lambda: _layout(bob)["unread"])
    harness.save_screenshot(bob, "phone-in-call")
    bob.get_by_test_id("show-chat").click()
    unread_after_open = _layout(bob)["unread"]

    desktop = _layout(alice)
    return {
        "prejoin": prejoin,
        "in_call": in_call,
        "chat_open": chat_open,
        "scrolled_back": scrolled_back,
        "after_scroll": after_scroll,
        "people_open": people_open,
        "unread": unread,
        "unread_after_open": unread_after_open,
        "desktop": desktop,
    }
