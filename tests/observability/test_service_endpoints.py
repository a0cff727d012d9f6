"""``/``, ``/health``, ``/_debug`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import (
    LiveServer,
    collect,
    connect_ws,
    create_guest,
    create_room,
    run_server,
    ws_path,
)


async def test_root_lists_the_api(client: httpx.AsyncClient) -> None:
    body = (await client.get("/")).json()
    assert body["docs"] == "/docs" and body["health"] == "/health" and body["chat"] == "/chat"
    assert body["version"] and body["message"]


async def test_browser_is_sent_to_the_web_client(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code in {302, 303, 307}
    assert response.headers["location"] == "/chat"
    page = await client.get("/chat/rooms/abc")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


async def test_the_icon_browsers_ask_for_on_their_own_is_served(
    client: httpx.AsyncClient,
) -> None:
    # Browsers fetch /favicon.ico for any page without an icon link (a JSON answer, say).
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.content == (await client.get("/static/favicon.svg")).content


async def test_health_reports_services_and_stats(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    async with connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])) as ws:
        await ws.send(json.dumps({"content": "hi"}))
        await collect(ws, "message", 1)
        body = (await client.get("/health")).json()
    assert body["status"] == "healthy"
    assert body["environment"] == "test" and body["version"] and body["timestamp"]
    assert body["services"]["database"]["status"] == "healthy"
    assert body["stats"]["active_rooms"] == 1
    assert body["stats"]["active_users"] == 1
    assert body["stats"]["total_messages"] == 1


async def test_health_is_503_when_the_database_is_down(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    context = server.context
    working = context.engine
    # Nothing listens on port 1: every connection attempt is refused at once.
    context.engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        response = await client.get("/health")
    finally:
        await context.engine.dispose()
        context.engine = working
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["services"]["database"]["status"] == "unhealthy"
    assert (await client.get("/health")).status_code == 200


async def test_debug_has_no_secrets(client: httpx.AsyncClient, server: LiveServer) -> None:
    body: dict[str, Any] = (await client.get("/_debug")).json()
    assert body["bunny_enabled"] is False and body["environment"] == "test"
    text = json.dumps(body)
    assert server.settings.jwt.secret.get_secret_value() not in text
    assert not [key for key in body if any(w in key for w in ("secret", "password", "key"))]


async def test_debug_is_404_in_production(make_settings: Any) -> None:
    settings = make_settings(
        environment="production", jwt={"secret": "p" * 40}, http={"allowed_hosts": ["127.0.0.1"]}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        assert (await http.get("/_debug")).status_code == 404
        # Production serves no API docs, and the index does not point at them.
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/")).json()["docs"] is None


async def test_metrics_summary_counts_what_happens(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    before = (await client.get("/metrics")).json()
    assert set(before) >= {"requests", "websocket", "video"}
    assert set(before["requests"]) == {
        "total",
        "successful",
        "failed",
        "success_rate",
        "average_duration_ms",
    }
    assert set(before["websocket"]) == {
        "active_connections",
        "total_connections",
        "messages_sent",
        "messages_received",
    }
    assert set(before["video"]) == {"live_streams_created", "videos_uploaded", "videos_processed"}
    await client.get("/rooms/missing")
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    async with connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])) as ws:
        await ws.send(json.dumps({"content": "hi"}))
        await collect(ws, "message", 1)
        during = (await client.get("/metrics")).json()
    assert during["requests"]["total"] >= before["requests"]["total"] + 4
    assert during["requests"]["failed"] >= before["requests"]["failed"] + 1
    assert (
        during["websocket"]["active_connections"] == before["websocket"]["active_connections"] + 1
    )
    assert during["websocket"]["total_connections"] == before["websocket"]["total_connections"] + 1
    assert during["websocket"]["messages_received"] == before["websocket"]["messages_received"] + 1
    assert during["websocket"]["messages_sent"] > before["websocket"]["messages_sent"]
    prometheus = await client.get("/metrics/prometheus")
    assert "videochat_http_requests_total" in prometheus.text


async def test_request_id_is_returned(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-Id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    assert len((await client.get("/health")).headers["x-request-id"]) == 32


async def test_unknown_path_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_health_counts_the_tables_once_for_a_burst(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    """/health is never rate-limited: a flood of it must not count whole tables each time."""
    counted: list[str] = []
    totals = server.context.health.totals
    for name, count in list(totals.items()):

        async def counting(session: Any, name: str = name, count: Any = count) -> int:
            counted.append(name)
            return int(await count(session))

        totals[name] = counting
    answers = await asyncio.gather(*(client.get("/health") for _ in range(20)))
    assert {answer.status_code for answer in answers} == {200}
    assert sorted(counted) == sorted(totals)  # each total counted once, not 20 times
    assert all(
        set(a.json()["stats"]) >= {"active_rooms", "active_users", "total_messages"}
        for a in answers
    )
