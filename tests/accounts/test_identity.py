"""The caller's token is decoded once per request, whoever asks for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support import auth, create_guest, create_room, run_server
from videochat.config import Settings
from videochat.security import identity


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every access-token decode of a request, counted."""
    seen: list[str] = []
    real = identity.decode_token

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(identity, "decode_token", counting)
    return seen


async def test_an_authenticated_write_decodes_its_token_once(
    make_settings: Callable[..., Settings], decodes: list[str]
) -> None:
    # The rate limiter (per-user writes), the endpoint and the request log all want it.
    settings = make_settings(
        rate_limit={"enabled": True, "requests": 1000, "user_writes": 100},
        observability={"request_logs": True},
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        alice = await create_guest(http, "alice")
        bob = await create_guest(http, "bob")
        room = await create_room(http, alice["access_token"], "Lounge")
        decodes.clear()
        joined = await http.post(f"/rooms/{room['id']}/join", headers=auth(bob["access_token"]))
        assert joined.status_code == 200, joined.text
        assert decodes == [bob["access_token"]]

        decodes.clear()
        refused = await http.post(f"/rooms/{room['id']}/join", headers=auth("not.a.jwt"))
        assert refused.status_code == 401
        assert decodes == ["not.a.jwt"]  # the failure is remembered too
