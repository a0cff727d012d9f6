"""A client that stops reading is cut off (4008); the others keep receiving."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import httpx
import websockets

from tests.support import (
    collect,
    connect_ws,
    create_guest,
    create_room,
    eventually,
    run_server,
    ws_path,
)
from videochat.config import Settings


def _settings(tmp_path: Path, *, send_queue_size: int) -> Settings:
    # About the socket, not storage: SQLite only.
    return Settings(
        environment="test",
        data_dir=tmp_path,
        rate_limit={"enabled": False},
        realtime={"send_queue_size": send_queue_size},
        log_level="WARNING",
    )


async def test_slow_consumer_is_disconnected_and_others_are_not(tmp_path: Path) -> None:
    settings = _settings(tmp_path, send_queue_size=8)
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        alice = await create_guest(http, "alice")
        sloth = await create_guest(http, "sloth")
        room = await create_room(http, alice["access_token"])
        # max_queue=1: the sloth's client stops reading from
        # TCP almost at once, so the server's send buffer and then its queue fill up.
        sloth_socket = await websockets.connect(
            live.ws_url + ws_path(room["id"], sloth["id"], sloth["access_token"]),
            max_queue=1,
            compression=None,
        )
        async with connect_ws(live, ws_path(room["id"], alice["id"], alice["access_token"])) as a:
            # Incompressible text, so loopback's large socket buffers fill in seconds.
            count = 1500
            for _ in range(count):
                await a.send(json.dumps({"content": base64.b64encode(os.urandom(2900)).decode()}))
            received = await collect(a, "message", count, timeout=120)
            assert len(received) == count  # the healthy client got everything

            hub = live.context.hub
            async with asyncio.timeout(10):
                while any(c.user_id == sloth["id"] for c in hub.all_connections()):
                    await asyncio.sleep(0.05)

        codes = []
        try:
            async with asyncio.timeout(10):
                while True:
                    await sloth_socket.recv()
        except websockets.ConnectionClosed as closed:
            codes.append(closed.rcvd.code if closed.rcvd else None)
        # 4008 when the close frame got through; the transport may also just be cut.
        assert codes and codes[0] in {4008, None}
        await sloth_socket.close()
        metrics = (await http.get("/metrics/prometheus")).text
        assert "videochat_websocket_slow_consumers_total" in metrics


async def test_a_socket_that_falls_behind_gets_everything_in_order_once_it_reads(
    tmp_path: Path,
) -> None:
    """Frames written straight to the socket, then queued while it is full, then drained."""
    settings = _settings(tmp_path, send_queue_size=1000)
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        reader = await create_guest(http, "reader")
        room = await create_room(http, reader["access_token"])
        path = ws_path(room["id"], reader["id"], reader["access_token"])
        # max_queue=1: the client stops reading from TCP until the test calls recv().
        async with websockets.connect(
            live.ws_url + path, max_queue=1, compression=None, max_size=None
        ) as socket:
            while json.loads(await socket.recv())["type"] != "presence":
                pass
            (connection,) = live.context.hub.all_connections()
            # 24 MB: more than loopback's buffers take (a few MB), fewer than the backlog.
            count = 600
            blob = base64.b64encode(os.urandom(30_000)).decode()
            for seq in range(count):
                connection.offer(json.dumps({"type": "noise", "seq": seq, "blob": blob}))
            await eventually(
                lambda: connection.waiting > 0 or connection.closed,
                message="the socket never filled up: the test proves nothing",
            )
            assert not connection.closed
            seen = []
            async with asyncio.timeout(60):
                while len(seen) < count:
                    frame = json.loads(await socket.recv())
                    if frame["type"] == "noise":
                        seen.append(frame["seq"])
            assert seen == list(range(count))  # none lost, none repeated, in order
