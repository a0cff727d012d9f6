"""Spam checks: repeated text and link floods, per sender, over a real socket."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support import connect_ws, create_guest, create_room, receive_until, run_server, ws_path
from videochat.chat.spam import SpamError, SpamGuard


def test_guard_allows_two_repeats_then_refuses() -> None:
    guard = SpamGuard()
    guard.check("Hello", now=0)
    guard.check("hello ", now=1)
    with pytest.raises(SpamError):
        guard.check("HELLO", now=2)
    guard.check("hello", now=40)  # the window has passed
    with pytest.raises(SpamError, match="links"):
        guard.check(" ".join(f"https://x{i}.example" for i in range(6)), now=41)
    guard.check(" ".join(f"https://x{i}.example" for i in range(5)), now=42)
    # Any case, either form, with or without spaces between them.
    with pytest.raises(SpamError, match="links"):
        guard.check("See:WWW.a.example\nHTTP://b HTTPS://c (www.d) Http://e\twWw.f", now=43)


async def test_spam_is_refused_with_an_error_frame(make_settings: Any) -> None:
    settings = make_settings(rate_limit={"enabled": True, "requests": 1000})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        alice = await create_guest(http, "alice")
        room = await create_room(http, alice["access_token"])
        async with connect_ws(live, ws_path(room["id"], alice["id"], alice["access_token"])) as a:
            for _ in range(2):
                await a.send(json.dumps({"content": "buy now"}))
                await receive_until(a, "message")
            await a.send(json.dumps({"content": "buy now"}))
            error = await receive_until(a, "error")
            assert error["code"] == "spam"
        history = (await http.get(f"/rooms/{room['id']}/messages")).json()
        assert [m["content"] for m in history] == ["buy now", "buy now"]
