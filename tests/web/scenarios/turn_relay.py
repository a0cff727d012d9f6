"""TURN for real: two pages forced to relay-only connect through Debian's coturn.

coturn runs inside the namespace on 127.0.0.1 with ``use-auth-secret``; the server
hands out credentials for it from ``/rtc/ice-servers``. Both pages must end up on a
nominated pair of relay candidates with decoded video. Then the same coturn is asked
for allocations directly (aioice's TURN client): with the credentials a page got
(allocated), and with a forged password, a username whose expiry was pushed into
the future without re-signing it, credentials signed with another secret, and
expired credentials signed with the right secret (each refused with 401).
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import coturn, harness
from videochat.calls.service import turn_credentials

SECRET = secrets.token_urlsafe(24)
PORT = coturn.free_udp_port()
SETTINGS = {
    "VIDEOCHAT_CALLS__ICE_TRANSPORT_POLICY": "relay",
    "VIDEOCHAT_TURN__URLS": f'["turn:127.0.0.1:{PORT}?transport=udp"]',
    "VIDEOCHAT_TURN__SECRET": SECRET,
    "VIDEOCHAT_TURN__TTL_SECONDS": "600",
}

ICE_SERVERS_JS = """
async () => {
  const { api } = await import('/static/js/api.js');
  return api.iceServers();
}
"""


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    if not coturn.available():
        return {"skipped": "turnserver is not installed (apt-get install coturn)"}
    turn = coturn.Coturn(Path(tempfile.mkdtemp(prefix="coturn-")), SECRET, PORT)
    turn.start()
    try:
        return _call_through(turn, browser, server, errors)
    except Exception as error:
        raise harness.ScenarioError(f"{error}\ncoturn log:\n{turn.log()}") from error
    finally:
        turn.stop()


def _settled(page: Page, other: str) -> dict[str, Any]:
    """The peer's report once its selected pair reads "succeeded".

    Chromium briefly reports the selected pair as "in-progress" while a consent check
    is out, so one snapshot right after connecting can catch that.
    """

    def ready() -> dict[str, Any] | None:
        report: dict[str, Any] | None = harness.peer_report(page).get(other)
        succeeded = report is not None and report["pairState"] == "succeeded"
        return report if succeeded else None

    return harness.wait_for("the selected candidate pair to succeed", ready, timeout=15)


def _call_through(
    turn: coturn.Coturn, browser: Browser, server: harness.ServerProcess, errors: list[str]
) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Relayed call")
    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")

    started = time.monotonic()
    harness.wait_for_media(alice, [bob_id], timeout=30)
    harness.wait_for_media(bob, [alice_id], timeout=30)
    reports = {"alice": _settled(alice, bob_id), "bob": _settled(bob, alice_id)}
    connected_seconds = round(time.monotonic() - started, 2)
    configuration: dict[str, Any] = alice.evaluate(
        """(bob) => {
          const config = window.videochat.peers.get(bob).getConfiguration();
          return {
            policy: config.iceTransportPolicy,
            urls: config.iceServers.flatMap((server) => [].concat(server.urls)),
          };
        }""",
        bob_id,
    )

    # What /rtc/ice-servers gives alice, used directly against coturn.
    body: dict[str, Any] = alice.evaluate(ICE_SERVERS_JS)
    (server_entry,) = [entry for entry in body["ice_servers"] if "username" in entry]
    username, password = server_entry["username"], server_entry["credential"]
    expiry, user_part = username.split(":", 1)
    expired_username, expired_password = turn_credentials(
        SECRET, alice_id, 600, now=time.time() - 1200
    )
    other_username, other_password = turn_credentials("not-the-secret", alice_id, 600)
    allocations = {
        "issued": coturn.try_allocate(turn.port, username, password),
        "forged_password": coturn.try_allocate(
            turn.port, username, coturn.rest_credentials("guessed", username)
        ),
        "extended_expiry": coturn.try_allocate(
            turn.port, f"{int(expiry) + 86400}:{user_part}", password
        ),
        "other_secret": coturn.try_allocate(turn.port, other_username, other_password),
        "expired": coturn.try_allocate(turn.port, expired_username, expired_password),
    }
    return {
        "ids": {"alice": alice_id, "bob": bob_id},
        "peers": reports,
        "configuration": configuration,
        "turn_url": turn.url,
        "username_user": user_part,
        "username_expiry_in": int(expiry) - int(time.time()),
        "expired_username_expiry_in": int(expired_username.split(":")[0]) - int(time.time()),
        "allocations": allocations,
        "connected_seconds": connected_seconds,
        "timings": {"alice": harness.timings(alice), "bob": harness.timings(bob)},
    }
