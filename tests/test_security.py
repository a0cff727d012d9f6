"""HTTP rate limits and security headers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import websockets

from tests.support import run_server


async def test_rate_limit_headers_and_429(make_settings: Any) -> None:
    settings = make_settings(rate_limit={"enabled": True, "requests": 5, "window_seconds": 60})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        remaining = []
        for _ in range(5):
            response = await http.get("/rooms")
            assert response.status_code == 200
            assert response.headers["x-ratelimit-limit"] == "5"
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        refused = await http.get("/rooms")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "Too many requests" in refused.json()["detail"]
        # Health checks are never limited.
        assert (await http.get("/health")).status_code == 200


async def test_security_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/chat")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    docs = await client.get("/docs")
    assert "content-security-policy" not in docs.headers


async def test_cors_allow_list(make_settings: Any) -> None:
    settings = make_settings(cors_origins=["https://app.example"])
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        allowed = await http.options(
            "/rooms",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        denied = await http.get("/rooms", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in denied.headers


async def test_login_attempts_are_limited_per_account(make_settings: Any) -> None:
    settings = make_settings(rate_limit={"enabled": True, "requests": 1000})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        await http.post("/auth/register", json={"username": "target", "password": "right-password"})
        codes = [
            (
                await http.post("/auth/login", json={"username": "target", "password": "wrong!!!"})
            ).status_code
            for _ in range(11)
        ]
        assert codes[:10] == [401] * 10
        assert codes[10] == 429
        blocked = await http.post(
            "/auth/login", json={"username": "target", "password": "right-password"}
        )
        assert blocked.status_code == 429  # even the right password waits out the window
        assert int(blocked.headers["retry-after"]) >= 1
        other = await http.post("/auth/login", json={"username": "other", "password": "x"})
        assert other.status_code == 401  # other accounts are not locked by it


async def test_open_sockets_per_address_are_limited(make_settings: Any) -> None:
    from tests.support import connect_ws, create_guest, create_room, ws_path

    settings = make_settings(
        rate_limit={"enabled": True, "requests": 1000, "ws_connections_per_ip": 2}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        alice = await create_guest(http, "alice")
        room = await create_room(http, alice["access_token"])
        path = ws_path(room["id"], alice["id"], alice["access_token"])
        async with connect_ws(live, path), connect_ws(live, path):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with connect_ws(live, path):
                    pass
            assert refused.value.response.status_code == 403
        async with connect_ws(live, path):  # a slot is free again
            pass
