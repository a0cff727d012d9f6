"""The chat pane: a visible edit field, its own scroll pinned to the newest message,
older pages on scrolling up, compact grouped messages and safe clickable links."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

HISTORY = 70  # more than one page (50): the oldest come only by scrolling up
LINK_TEXT = "see https://example.com/a?b=1, and javascript:alert(1) or <a href=x>y</a>"

# Post messages over a second socket of the page's person (a second tab, in effect),
# and wait until the server has echoed every one of them back.
POST_JS = """
async ([roomId, userId, texts]) => {
  const { access_token: token } = JSON.parse(localStorage.getItem('videochat.session.v1'));
  const query = new URLSearchParams({ token });
  const ws = new WebSocket(`ws://${location.host}/ws/${roomId}/${userId}?${query}`);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  let seen = 0;
  const done = new Promise((resolve) => {
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      const mine = frame.type === 'message' && frame.user_id === userId;
      if (mine && ++seen === texts.length) resolve();
    };
  });
  for (const content of texts) ws.send(JSON.stringify({ type: 'message', content }));
  await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 20000))]);
  ws.close();
  return seen;
}
"""

# Where the message list and the page are scrolled to.
SCROLL_JS = """
() => {
  const list = document.getElementById('message-list');
  const sidebar = document.querySelector('.sidebar');
  const last = list.lastElementChild?.getBoundingClientRect();
  return {
    count: list.children.length,
    scrollable: list.scrollHeight > list.clientHeight + 10,
    from_bottom: Math.round(list.scrollHeight - list.scrollTop - list.clientHeight),
    list_top: Math.round(list.scrollTop),
    sidebar_scrolled: sidebar.scrollTop,
    page_scrolled: window.scrollY,
    newest_in_view: Boolean(last) && last.bottom <= innerHeight && last.top >= 0,
  };
}
"""


def _edit_field(page: Page, text: str) -> dict[str, Any]:
    """Open the editor on a message: what the field shows and how big it is."""
    harness.message(page, text).get_by_role("button", name="Edit").click()
    field = page.get_by_test_id("message-edit-input")
    box = field.bounding_box()
    return {
        "visible": field.is_visible(),
        "width": box["width"] if box else 0,
        "height": box["height"] if box else 0,
        "value": field.input_value(),
    }


def _scroll(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(SCROLL_JS)
    return state


def _heights(page: Page) -> dict[str, Any]:
    """Heights of one-line messages: the first of a group and one grouped under it."""

    def grouped(text: str) -> bool:
        item = page.get_by_test_id("chat-message").filter(
            has=page.locator(".message-content").get_by_text(text, exact=True)
        )
        return "grouped" in (item.get_attribute("class") or "")

    first = harness.message(page, "pinned 1").bounding_box()
    second = harness.message(page, "pinned 2").bounding_box()
    return {
        "first": first["height"] if first else None,
        "grouped": second["height"] if second else None,
        "grouped_flags": {
            text: grouped(text) for text in ("history 2", "from bob", "pinned 1", "pinned 2")
        },
    }


def _links(page: Page) -> dict[str, Any]:
    item = harness.message(page, "see https://example.com")
    anchors = item.locator(".message-content a")
    return {
        "text": item.locator(".message-content").text_content(),
        "count": anchors.count(),
        "anchors": [
            {
                "href": anchors.nth(index).get_attribute("href"),
                "text": anchors.nth(index).text_content(),
                "rel": anchors.nth(index).get_attribute("rel"),
                "target": anchors.nth(index).get_attribute("target"),
            }
            for index in range(anchors.count())
        ],
    }


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Chat pane room")

    harness.send_chat(alice, "a message to edit")
    harness.wait_for_chat([alice], "a message to edit")
    editor = _edit_field(alice, "a message to edit")
    field = alice.get_by_test_id("message-edit-input")
    field.fill("an edited message")
    field.press("Enter")
    harness.wait_for_chat([alice], "an edited message")
    texts_after_edit = harness.chat_texts(alice)

    history = [f"history {number}" for number in range(1, HISTORY + 1)]
    posted = alice.evaluate(POST_JS, [room_id, alice_id, [*history, LINK_TEXT]])

    # Bob opens the room with its history: the newest message is in view.
    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    harness.join_as_guest(bob, "bob")
    harness.wait_for_chat([bob], LINK_TEXT)
    opened = harness.wait_for(
        "the chat scrolled to the newest message",
        lambda: (state := _scroll(bob))["from_bottom"] < 5 and state,
        timeout=5,
    )

    # New messages keep it pinned to the bottom.
    harness.send_chat(bob, "from bob")
    harness.wait_for_chat([alice], "from bob")
    harness.send_chat(alice, "pinned 1")
    harness.wait_for_chat([bob], "pinned 1")
    harness.send_chat(alice, "pinned 2")
    harness.wait_for_chat([bob], "pinned 2")
    pinned = harness.wait_for(
        "the chat to follow a new message",
        lambda: (state := _scroll(bob))["from_bottom"] < 5 and state,
        timeout=5,
    )

    # Scrolled up a little: a new message does not pull the reader down.
    bob.evaluate("document.getElementById('message-list').scrollTop -= 300")
    harness.send_chat(alice, "while reading")
    harness.wait_for_chat([bob], "while reading")
    reading = _scroll(bob)

    # Scrolled to the top: the older page comes in above, the view stays put.
    bob.evaluate("document.getElementById('message-list').scrollTop = 0")
    harness.wait_for("the older page", lambda: "history 1" in harness.chat_texts(bob))
    after_paging = _scroll(bob)
    texts = harness.chat_texts(bob)

    return {
        "editor": editor,
        "texts_after_edit": texts_after_edit,
        "posted": posted,
        "history": history,
        "link_text": LINK_TEXT,
        "opened": opened,
        "pinned": pinned,
        "reading": reading,
        "after_paging": after_paging,
        "texts_after_paging": texts,
        "heights": _heights(bob),
        "links": _links(bob),
        "screenshot": harness.save_screenshot(bob, "chat-pane"),
    }
