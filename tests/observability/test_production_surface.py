"""What production shows strangers: no API docs, HSTS, known hosts only, closed metrics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import run_server

SECRET = {"secret": "p" * 40}
HOST = {"allowed_hosts": ["127.0.0.1"]}


def _production(make_settings: Any, **overrides: Any) -> Any:
    values: dict[str, Any] = {"environment": "production", "jwt": SECRET, "http": HOST}
    return make_settings(**{**values, **overrides})


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
async def test_production_serves_no_api_docs_unless_asked(make_settings: Any, path: str) -> None:
    async with (
        run_server(_production(make_settings)) as live,
        httpx.AsyncClient(base_url=live.url) as http,
    ):
        assert (await http.get(path)).status_code == 404
    asked = _production(make_settings, http={**HOST, "api_docs": True})
    async with run_server(asked) as live, httpx.AsyncClient(base_url=live.url) as http:
        assert (await http.get(path)).status_code in {200, 308}  # /redoc: to /docs


async def test_production_sends_hsts(make_settings: Any) -> None:
    settings = _production(make_settings, public_url="https://chat.example.org")
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        header = (await http.get("/health/live")).headers["strict-transport-security"]
        assert header.startswith("max-age=31536000")
    async with run_server(make_settings()) as live, httpx.AsyncClient(base_url=live.url) as http:
        assert "strict-transport-security" not in (await http.get("/health/live")).headers


async def test_production_accepts_only_its_own_host(make_settings: Any) -> None:
    settings = _production(make_settings, public_url="https://chat.example.org", http={})
    assert settings.http.allowed_hosts == ["chat.example.org"]
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        forged = await http.get("/rooms", headers={"Host": "evil.example"})
        assert forged.status_code == 400
        mine = await http.get("/rooms", headers={"Host": "chat.example.org"})
        assert mine.status_code == 200
        # Probes and scrapers reach instances by address: service paths skip the check.
        assert (await http.get("/health/ready")).status_code == 200


async def test_production_metrics_need_the_metrics_token(make_settings: Any) -> None:
    async with (
        run_server(_production(make_settings)) as live,
        httpx.AsyncClient(base_url=live.url) as http,
    ):
        for path in ("/metrics", "/metrics/prometheus"):
            closed = await http.get(path)
            assert closed.status_code == 403
            assert "METRICS_TOKEN" in closed.json()["detail"]
        health = await http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "healthy"
        assert "stats" not in health.json()  # no figures for strangers
    token = "m" * 40
    settings = _production(make_settings, observability={"metrics_token": token})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        for path in ("/metrics", "/metrics/prometheus"):
            assert (await http.get(path)).status_code == 401
            wrong = await http.get(path, headers={"Authorization": "Bearer " + "x" * 40})
            assert wrong.status_code == 401
            right = await http.get(path, headers={"Authorization": f"Bearer {token}"})
            assert right.status_code == 200
        assert "stats" not in (await http.get("/health")).json()
        shown = await http.get("/health", headers={"Authorization": f"Bearer {token}"})
        assert set(shown.json()["stats"]) >= {"active_rooms", "active_users", "total_messages"}


async def test_outside_production_metrics_stay_public(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/metrics/prometheus")).status_code == 200
    assert "stats" in (await client.get("/health")).json()
