"""HTTP rate limits and security headers."""

from __future__ import annotations

from typing import Any

import httpx

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
