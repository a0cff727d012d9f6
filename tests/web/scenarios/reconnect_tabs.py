"""A socket that drops rebuilds the call; a second tab of one person takes the call over.

Three people in a call. Alice's socket is closed from her page (the WebSocket
object the client made, closed as a network or server hiccup would): the client
reconnects, starts every peer connection over and the call resumes with everyone,
on new RTCPeerConnections that decode frames again. Then the harder case: her
socket goes silent without the server noticing (the page gives up on it, the
server still holds it), so for a while the server has two sockets of hers; the
new one is the one in the call.

Then Bob opens the room in a second tab (same browser profile: same person). The
new tab takes the call over (the others reconnect to it, the first tab says so and
drops its connections); closing it gives the call back to the first tab.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

# Every WebSocket the page makes, so the test can close the room socket itself.
RECORD_SOCKETS_JS = """
(() => {
  const Native = window.WebSocket;
  const made = [];
  window.__testSockets = made;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      made.push(this);
    }
  };
})();
"""

# Mark the current peer connections, to tell them from rebuilt ones later.
MARK_PEERS_JS = """
(mark) => {
  for (const pc of window.videochat.peers.values()) pc.__mark = mark;
  return [...window.videochat.peers.keys()];
}
"""

# Per remote user: whether the connection is a new one (unmarked), its state, frames.
PEERS_SINCE_MARK_JS = """
async (mark) => {
  const out = {};
  for (const [userId, pc] of window.videochat.peers) {
    let frames = 0;
    (await pc.getStats()).forEach((entry) => {
      if (entry.type === 'inbound-rtp' && entry.kind === 'video') {
        frames += entry.framesDecoded ?? 0;
      }
    });
    out[userId] = { rebuilt: pc.__mark !== mark, state: pc.connectionState, framesDecoded: frames };
  }
  return out;
}
"""

CLOSE_SOCKET_JS = """
() => {
  const ws = window.__testSockets.filter((s) => s.url.includes('/ws/')).at(-1);
  ws.close(4000, 'test: dropped');
  return ws.url.split('?')[0];
}
"""

# The socket dies silently: the page stops hearing it and gives up on it (as its
# heartbeat would after 50 s of silence), while the server still holds it open.
SILENCE_SOCKET_JS = """
() => {
  const ws = window.__testSockets.filter((s) => s.url.includes('/ws/')).at(-1);
  const onclose = ws.onclose;
  ws.onmessage = null;
  ws.onclose = null;
  ws.send = () => {};
  onclose.call(ws, new CloseEvent('close', { code: 1006 }));
  return window.__testSockets.length;
}
"""


def _frames_after_rebuild(
    page: Page, others: list[str], mark: str, *, timeout: float = 30.0
) -> dict[str, Any]:
    """Until every connection to ``others`` is a new one, connected, with decoded frames."""

    def ready() -> dict[str, Any] | None:
        seen: dict[str, Any] = page.evaluate(PEERS_SINCE_MARK_JS, mark)
        good = all(
            seen.get(other, {}).get("rebuilt")
            and seen[other]["state"] == "connected"
            and seen[other]["framesDecoded"] > 0
            for other in others
        )
        return seen if good else None

    try:
        result: dict[str, Any] = harness.wait_for("rebuilt connections", ready, timeout=timeout)
    except harness.ScenarioError as error:
        raise harness.ScenarioError(
            f"{error}; now: {page.evaluate(PEERS_SINCE_MARK_JS, mark)}"
        ) from None
    return result


def _frames(page: Page, other: str) -> int:
    report = harness.peer_report(page).get(other, {})
    return int(report.get("framesDecoded", 0))


def _drop_and_rebuild(
    pages: dict[str, Page], ids: dict[str, str], how: str, js: str
) -> dict[str, Any]:
    mark = f"before-{how}"
    for page in pages.values():
        page.evaluate(MARK_PEERS_JS, mark)
    alice = pages["alice"]
    started = time.monotonic()
    alice.evaluate(js)
    harness.wait_for(
        "alice's socket back",
        lambda: (
            alice.evaluate(
                "window.__testSockets.filter((s) => s.url.includes('/ws/'))"
                ".at(-1).readyState === WebSocket.OPEN"
            )
            and alice.locator("#connection-status").text_content() == ""
        ),
        timeout=15,
    )
    socket_back = round(time.monotonic() - started, 2)
    # Alice's connections are new on every page; the others' between themselves are not.
    rebuilt = {
        name: _frames_after_rebuild(
            page,
            [ids[o] for o in pages if o != name] if name == "alice" else [ids["alice"]],
            mark,
        )
        for name, page in pages.items()
    }
    call_back = round(time.monotonic() - started, 2)
    # Frames keep coming on the new connections.
    before = {name: _frames(alice, ids[name]) for name in pages if name != "alice"}
    time.sleep(1.0)
    after = {name: _frames(alice, ids[name]) for name in pages if name != "alice"}
    return {
        "socket_back_seconds": socket_back,
        "call_back_seconds": call_back,
        "rebuilt": rebuilt,
        "alice_frames": {"before": before, "after": after},
        "remote_tiles": {n: p.get_by_test_id("remote-video").count() for n, p in pages.items()},
        "alice_sockets_made": alice.evaluate("window.__testSockets.length"),
    }


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    pages: dict[str, Page] = {}
    ids: dict[str, str] = {}
    room_id = ""
    for name in ("alice", "bob", "carol"):
        page = harness.new_page(browser, server.url, errors)
        page.add_init_script(RECORD_SOCKETS_JS)
        if room_id:
            page.goto(f"/chat/rooms/{room_id}")
            ids[name] = harness.join_as_guest(page, name)
        else:
            page.goto("/chat")
            ids[name] = harness.join_as_guest(page, name)
            room_id = harness.create_room(page, "Reconnect room")
        pages[name] = page
    for name, page in pages.items():
        harness.wait_for_media(page, [ids[o] for o in pages if o != name], timeout=30)

    closed = _drop_and_rebuild(pages, ids, "close", CLOSE_SOCKET_JS)
    silent = _drop_and_rebuild(pages, ids, "silence", SILENCE_SOCKET_JS)
    participants_after = pages["bob"].get_by_test_id("participant").count()

    # Bob's second tab: same profile, so same person.
    bob, alice = pages["bob"], pages["alice"]
    alice.evaluate(MARK_PEERS_JS, "before-tab")
    second = harness.new_tab(bob, errors)
    second.goto(f"/chat/rooms/{room_id}")
    harness.join_call(second)  # a new tab: its own pre-join screen
    started = time.monotonic()
    harness.wait_for_media(second, [ids["alice"], ids["carol"]], timeout=30)
    alice_to_second = _frames_after_rebuild(alice, [ids["bob"]], "before-tab")
    tab_seconds = round(time.monotonic() - started, 2)
    first_tab = {
        "notice": harness.wait_for(
            "the first tab's notice", lambda: harness.notice_text(bob, "elsewhere"), timeout=10
        ),
        "peers": harness.wait_for(
            "the first tab to hang up",
            lambda: bob.evaluate("window.videochat.peers.size") == 0 or None,
            timeout=10,
        )
        and bob.evaluate("[...window.videochat.peers.keys()]"),
        "remote_tiles": bob.get_by_test_id("remote-video").count(),
        "chat_input_enabled": bob.get_by_test_id("chat-input").is_enabled(),
    }
    people_with_second_tab = alice.get_by_test_id("participant").count()

    # The second tab closes: the first one gets the call back.
    alice.evaluate(MARK_PEERS_JS, "before-close")
    started = time.monotonic()
    second.close()
    back = harness.wait_for_media(bob, [ids["alice"], ids["carol"]], timeout=30)
    alice_back = _frames_after_rebuild(alice, [ids["bob"]], "before-close")
    back_seconds = round(time.monotonic() - started, 2)
    return {
        "ids": ids,
        "closed": closed,
        "silent": silent,
        "participants_after_drops": participants_after,
        "second_tab": {
            "alice_sees": alice_to_second,
            "seconds": tab_seconds,
            "first_tab": first_tab,
            "people_in_alice_list": people_with_second_tab,
        },
        "first_tab_back": {
            "bob_peers": sorted(back),
            "alice_sees": alice_back,
            "seconds": back_seconds,
            "notice": harness.notice_text(bob, "elsewhere"),
        },
        "call_traces": {
            n: p.evaluate("window.videochat.trace.slice(-40)") for n, p in pages.items()
        },
    }
