"""Heartbeats: a peer that stops answering pings is collected; a quiet live one is not."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.support import connect_ws, create_guest, create_room, receive_until, run_server, ws_path
from videochat.config import Settings


async def _open_and_go_silent(url: str, path: str) -> asyncio.StreamWriter:
    """A WebSocket handshake by hand, then nothing: no reads, so no pong ever."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    assert b" 101 " in status, status
    return writer


async def test_a_dead_peer_is_dropped_and_the_room_is_told(tmp_path: Path) -> None:
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        rate_limit={"enabled": False},
        realtime={"ping_interval_seconds": 0.5, "ping_timeout_seconds": 0.5},
        log_level="WARNING",
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        alice = await create_guest(http, "alice")
        ghost = await create_guest(http, "ghost")
        room = await create_room(http, alice["access_token"])
        hub = live.context.hub
        async with connect_ws(live, ws_path(room["id"], alice["id"], alice["access_token"])) as a:
            silent = await _open_and_go_silent(
                live.url, ws_path(room["id"], ghost["id"], ghost["access_token"])
            )
            try:
                # The ghost joined, then never answered a ping: the room hears it left.
                left = await receive_until(a, "user_left", timeout=15)
                assert left["user_id"] == ghost["id"]
                assert not any(c.user_id == ghost["id"] for c in hub.all_connections())
                participants = [p["user_id"] for p in await hub.participants(room["id"])]
                assert participants == [alice["id"]]
                # Alice said nothing all along but her client answers pings: still here.
                assert any(c.user_id == alice["id"] for c in hub.all_connections())
                await a.send('{"type": "ping", "time": 1}')
                assert (await receive_until(a, "pong"))["time"] == 1
            finally:
                silent.close()
