"""Prometheus metrics move with what happens: routes, sockets by close reason, pool, queue."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import websockets
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    LiveServer,
    auth,
    collect,
    connect_ws,
    create_guest,
    create_room,
    eventually,
    receive_until,
    run_server,
    ws_path,
)
from videochat.config import Settings
from videochat.observability import metrics
from videochat.observability.middleware import route_template

CLOSED = "videochat_websocket_connections_closed_total"


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics/prometheus``, keyed by (name, labels)."""
    response = await client.get("/metrics/prometheus")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def closed_by(client: httpx.AsyncClient, reason: str) -> float:
    return value(await scrape(client), CLOSED, reason=reason)


async def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def test_http_metrics_use_route_templates(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    rooms = [await create_room(client, alice["access_token"], f"Room {n}") for n in range(2)]
    before = await scrape(client)
    for room in rooms:
        assert (await client.get(f"/rooms/{room['id']}")).status_code == 200
    assert (await client.get("/rooms/not-a-room")).status_code == 404
    assert (await client.get("/static/css/app.css")).status_code == 200
    assert (await client.get("/scanner/probe/1")).status_code == 404
    # A request is counted when its handler returns (a static file: once its body went
    # out), which can be just after the client has read the response: read until every
    # route shows (bounded), then compare.
    name = "videochat_http_requests_total"
    after = before

    def delta(**labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    async def all_counted() -> bool:
        nonlocal after
        after = await scrape(client)
        return (
            delta(method="GET", route="<unmatched>", status="404") >= 1
            and delta(method="GET", route="/static/{path}", status="200") >= 1
            and delta(method="GET", route="/rooms/{room_id}", status="404") >= 1
        )

    await eventually(all_counted, interval=0.05)

    assert delta(method="GET", route="/rooms/{room_id}", status="200") == 2
    assert delta(method="GET", route="/rooms/{room_id}", status="404") == 1
    assert delta(method="GET", route="/static/{path}", status="200") == 1
    assert delta(method="GET", route="<unmatched>", status="404") == 1
    duration = "videochat_http_request_duration_seconds_count"
    assert (
        value(after, duration, method="GET", route="/rooms/{room_id}")
        - value(before, duration, method="GET", route="/rooms/{room_id}")
        == 3
    )
    # No raw ids: every label is a template.
    routes = {dict(labels).get("route", "") for (_, labels) in after}
    assert not [route for route in routes if any(room["id"] in route for room in rooms)]


def test_route_template_from_path_params_when_no_route_is_recorded() -> None:
    scope = {
        "path": "/rooms/abc/members/def/kick",
        "endpoint": object(),
        "path_params": {"room_id": "abc", "user_id": "def"},
    }
    assert route_template(scope) == "/rooms/{room_id}/members/{user_id}/kick"
    assert route_template({"path": "/x"}) == "<unmatched>"


async def test_socket_lifecycle_metrics(client: httpx.AsyncClient, server: LiveServer) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    before = await scrape(client)
    async with connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])) as ws:
        await ws.send(json.dumps({"content": "hi"}))
        await collect(ws, "message", 1)
        during = await scrape(client)
    await wait_for(lambda: _grew(client, CLOSED, before, reason="normal"))
    after = await scrape(client)

    def grew(samples: dict[Any, float], name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    assert grew(during, "videochat_websocket_connections_active") == 1
    assert grew(during, "videochat_websocket_connections_opened_total") == 1
    assert grew(during, "videochat_websocket_frames_received_total") == 1
    # user_joined, presence and the message itself, at least.
    assert grew(during, "videochat_websocket_frames_sent_total") >= 3
    assert grew(during, "videochat_chat_messages_total") == 1
    assert grew(after, "videochat_websocket_connections_active") == 0
    assert grew(after, CLOSED, reason="normal") == 1


async def _grew(
    client: httpx.AsyncClient, name: str, before: dict[Any, float], **labels: str
) -> bool:
    return value(await scrape(client), name, **labels) > value(before, name, **labels)


async def test_sockets_closed_by_the_server_are_counted_by_reason(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        rate_limit={"enabled": True, "ws_frames": 1, "ws_frames_window_seconds": 60},
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        alice = await create_guest(client, "alice")
        room = await create_room(client, alice["access_token"])
        path = ws_path(room["id"], alice["id"], alice["access_token"])

        # Too big: uvicorn refuses a frame over the limit with close code 1009.
        before = await closed_by(client, "too_big")
        async with connect_ws(live, path) as ws:
            await receive_until(ws, "presence")
            await ws.send(json.dumps({"content": "x" * (settings.realtime.max_frame_bytes + 10)}))
            await ws.wait_closed()
        await wait_for(lambda: _more(client, "too_big", before))

        # Rate limited: one frame allowed, then the 11th frame over the limit ends the socket.
        before = await closed_by(client, "rate_limited")
        async with connect_ws(live, path) as ws:
            with contextlib.suppress(websockets.ConnectionClosed):
                for _ in range(12):
                    await ws.send(json.dumps({"type": "typing"}))
            await ws.wait_closed()
        await wait_for(lambda: _more(client, "rate_limited", before))

        # Slow consumer: a client that stops reading (max_queue=1) while big frames keep
        # coming fills the socket's buffers, then its backlog.
        before = await closed_by(client, "slow_consumer")
        slow_before = value(await scrape(client), "videochat_websocket_slow_consumers_total")
        # (close_timeout: a client that reads nothing never reads the server's close frame
        # either, and would wait websockets' default 10 s for it on the way out.)
        async with websockets.connect(
            live.ws_url + path, max_queue=1, compression=None, close_timeout=0.5
        ) as ws:
            (connection,) = live.context.hub.all_connections()
            noise = json.dumps(
                {"type": "noise", "data": base64.b64encode(os.urandom(36_000)).decode()}
            )
            for _ in range(5_000):  # bounded; loopback's buffers take a few MB at most
                if connection.closed:
                    break
                connection.offer(noise)
                await asyncio.sleep(0)
            assert connection.closed_by_server and connection.close_code == 4008
        await wait_for(lambda: _more(client, "slow_consumer", before))
        slow_after = value(await scrape(client), "videochat_websocket_slow_consumers_total")
        assert slow_after == slow_before + 1

        # Server shutdown: still open when the server stops.
        shutdown_before = _closed_in_process("server_shutdown")
        ws = await websockets.connect(live.ws_url + path, max_queue=None)
        await receive_until(ws, "presence")
    await ws.wait_closed()
    assert ws.close_code in {1001, 1012}
    assert _closed_in_process("server_shutdown") == shutdown_before + 1


def _closed_in_process(reason: str) -> float:
    # The server ran in this process; after it stopped, its registry still holds the count.
    return metrics.WS_CLOSED.labels(reason=reason)._value.get()


async def _more(client: httpx.AsyncClient, reason: str, before: float) -> bool:
    return await closed_by(client, reason) == before + 1


async def test_pool_and_job_queue_gauges(client: httpx.AsyncClient, server: LiveServer) -> None:
    engine = server.context.engine
    checked_out = "videochat_db_pool_checked_out"
    # Start-up work (the first sweep of abandoned uploads) may hold a connection briefly.
    await wait_for(lambda: _pool_idle(client))
    before = await scrape(client)
    assert value(before, "videochat_db_pool_size") > 0
    async with engine.connect():
        held = await scrape(client)
    assert value(held, checked_out) == value(before, checked_out) + 1

    jobs = server.context.video_jobs
    depth = metrics.RUNTIME.read()["videochat_job_queue_depth"]
    # Nothing awaits in between: the runner's workers cannot take the job yet.
    await jobs.enqueue("no-such-video")
    assert metrics.RUNTIME.read()["videochat_job_queue_depth"] == depth + 1
    await wait_for(lambda: _queue_drained(client))


async def _pool_idle(client: httpx.AsyncClient) -> bool:
    return value(await scrape(client), "videochat_db_pool_checked_out") == 0


async def _queue_drained(client: httpx.AsyncClient) -> bool:
    return value(await scrape(client), "videochat_job_queue_depth") == 0


async def test_json_summary_counts_video_and_users(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    before = (await client.get("/metrics")).json()
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    created = await client.post(
        f"/rooms/{room['id']}/live-stream",
        json={"title": "Show"},
        headers=auth(alice["access_token"]),
    )
    assert created.status_code == 200, created.text
    after = (await client.get("/metrics")).json()
    assert after["video"]["live_streams_created"] == before["video"]["live_streams_created"] + 1
    assert after["requests"]["total"] >= before["requests"]["total"] + 3
    assert after["requests"]["success_rate"] <= 100.0


async def test_processing_time_is_observed_by_outcome() -> None:
    def count(outcome: str) -> float:
        return sum(
            sample.value
            for family in metrics.VIDEO_PROCESSING_SECONDS.collect()
            for sample in family.samples
            if sample.name.endswith("_count") and sample.labels["outcome"] == outcome
        )

    ready, failed = count("ready"), count("failed")
    loop = asyncio.get_running_loop()
    done, broken, cancelled = loop.create_future(), loop.create_future(), loop.create_future()
    for future in (done, broken, cancelled):
        future.add_done_callback(metrics.time_processing())
    done.set_result("ok")
    broken.set_exception(ValueError("not a video"))
    cancelled.cancel()
    await asyncio.sleep(0)  # done-callbacks run on the next loop iteration
    assert (count("ready"), count("failed")) == (ready + 1, failed + 1)


# What Prometheus 2.x sends when it scrapes (its scrape_protocols' default order).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def _documented_content_type() -> str:
    """The content type docs/API.md gives for ``GET /metrics/prometheus``."""
    text = (Path(__file__).resolve().parents[2] / "docs/API.md").read_text()
    section = text.split("### GET /metrics/prometheus", 1)[1].split("\n###", 1)[0]
    match = re.search(r"`(text/plain;[^`]*)`", section)
    assert match, "docs/API.md names no content type for /metrics/prometheus"
    return match.group(1)


async def test_prometheus_content_type_says_the_format_it_serves(
    client: httpx.AsyncClient,
) -> None:
    plain = await client.get("/metrics/prometheus")
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert plain.headers["content-type"] == _documented_content_type()
    assert any(
        f.name == "videochat_http_requests" for f in text_string_to_metric_families(plain.text)
    )
    asked = await client.get("/metrics/prometheus", headers={"Accept": "text/plain;version=0.0.4"})
    assert asked.headers["content-type"] == plain.headers["content-type"]
    # A scraper that negotiates OpenMetrics gets it, labelled as such.
    scraped = await client.get("/metrics/prometheus", headers={"Accept": PROMETHEUS_ACCEPT})
    assert scraped.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert scraped.text.endswith("# EOF\n")
    families = openmetrics_families(scraped.text)
    assert any(family.name == "videochat_http_requests" for family in families)
