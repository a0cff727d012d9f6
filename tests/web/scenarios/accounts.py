"""Register, survive a refused access token (refresh-token rotation), log out, log in.

Dana's device has no camera (getUserMedia refuses video), so she also shows the
audio-only fallback.
"""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

SESSION_KEY = "videochat.session.v1"
PASSWORD = "correct-horse-battery"
# A device without a camera: any request for video fails as it would there.
NO_CAMERA_JS = """
(() => {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) =>
    constraints && constraints.video
      ? Promise.reject(new DOMException('Requested device not found', 'NotFoundError'))
      : original(constraints);
})();
"""


def _session(page: Page) -> dict[str, Any]:
    raw = page.evaluate("(key) => localStorage.getItem(key)", SESSION_KEY)
    session: dict[str, Any] = json.loads(raw) if raw else {}
    return session


def _account_form(page: Page, action: str, password: str = PASSWORD) -> None:
    page.locator("#account-name").fill("dana")
    page.locator("#account-password").fill(password)
    page.locator(f'#account-form button[value="{action}"]').click()


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    page = harness.new_page(browser, server.url, errors)
    page.add_init_script(NO_CAMERA_JS)
    page.goto("/chat")
    _account_form(page, "register")
    page.get_by_test_id("room-name").wait_for(state="visible")
    registered = _session(page)
    room_id = harness.create_room(page, "Dana's room")
    media_notice = harness.wait_for(
        "the no-camera notice", lambda: harness.notice_text(page, "media")
    )
    buttons = {
        key: page.get_by_test_id(key).get_attribute("aria-pressed")
        for key in ("toggle-mic", "toggle-camera")
    }

    # The server refuses the access token: the client rotates its refresh token and
    # carries on, straight back into the room after a reload. The bad token is stored
    # from a page of the same origin without the app running: the room page reads the
    # session for each request, and one it still made (a busy CI run: the reloaded page
    # was signed out, three 401s) could start a rotation that the reload cut off after
    # the server had spent the refresh token; the reloaded page's rotation of the same
    # token was then refused as a reuse. (The server now lets a spent token rotate again
    # within a grace: jwt.refresh_reuse_grace_seconds.)
    room_url = page.url
    page.goto("/health")
    page.evaluate(
        "([key, session]) => localStorage.setItem(key, JSON.stringify(session))",
        [SESSION_KEY, {**registered, "access_token": "not-a-token"}],
    )
    page.goto(room_url)
    harness.wait_for(
        "the room after the refresh",
        lambda: page.locator("#room-title").text_content() == "Dana's room",
    )
    harness.send_chat(page, "still here")
    harness.wait_for_chat([page], "still here")
    refreshed = _session(page)

    page.locator("#sign-out").click()
    page.get_by_test_id("guest-name").wait_for(state="visible")
    signed_out = _session(page)

    _account_form(page, "login", password="wrong-password")
    wrong = harness.wait_for(
        "the login error", lambda: page.locator("#account-error").text_content() or None
    )
    _account_form(page, "login")
    page.get_by_test_id("room-name").wait_for(state="visible")
    return {
        "room_id": room_id,
        "media_notice": media_notice,
        "buttons_without_camera": buttons,
        "registered_user": registered.get("user", {}).get("username"),
        "refresh_rotated": bool(refreshed.get("refresh_token"))
        and refreshed.get("refresh_token") != registered.get("refresh_token"),
        "access_replaced": refreshed.get("access_token") not in {None, "not-a-token"},
        "signed_out_session": signed_out,
        "wrong_password_message": wrong,
        "whoami_after_login": page.locator("#whoami-name").text_content(),
        "url_after_login": page.url,
    }
