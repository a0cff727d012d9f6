"""Signalling abuse: large signals, floods of signals at one peer, a recipient that lags.

The sender is told (``bad_signal``, ``rate_limited``); the recipient is never dropped.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import Callable
from typing import Any

import httpx
import websockets

from tests.support import (
    LiveServer,
    connect_ws,
    create_guest,
    create_room,
    receive_until,
    run_server,
    ws_path,
)
from videochat.config import Settings

LIMITS_ON = {"enabled": True, "requests": 10_000, "user_writes": 10_000, "ws_frames": 10_000}


async def _pair(http: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any], str]:
    alice = await create_guest(http, "alice")
    bob = await create_guest(http, "bob")
    room = await create_room(http, alice["access_token"])
    return alice, bob, room["id"]


def _connect(server: LiveServer, room_id: str, user: dict[str, Any], **options: Any) -> Any:
    if options:
        path = ws_path(room_id, user["id"], user["access_token"])
        return websockets.connect(server.ws_url + path, **options)
    return connect_ws(server, ws_path(room_id, user["id"], user["access_token"]))


def _signal(to: str, size: int) -> str:
    return json.dumps({"type": "signal", "to": to, "data": {"sdp": "x" * size}})


async def _both_present(socket: Any) -> None:
    async with asyncio.timeout(10):
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == "presence" and len(frame["participants"]) == 2:
                return


async def test_a_signal_larger_than_the_limit_is_refused(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice, bob, room_id = await _pair(client)
    async with _connect(server, room_id, alice) as a, _connect(server, room_id, bob) as b:
        await _both_present(a)
        limit = server.settings.calls.max_signal_bytes
        await a.send(_signal(bob["id"], limit + 100))  # still under the frame limit
        error = await receive_until(a, "error")
        assert error["code"] == "bad_signal" and str(limit) in error["message"]
        await a.send(_signal(bob["id"], limit - 100))
        assert len((await receive_until(b, "signal"))["data"]["sdp"]) == limit - 100


async def test_signal_bytes_per_peer_are_budgeted(
    client: httpx.AsyncClient, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        rate_limit=LIMITS_ON,
        calls={"signal_bytes_per_peer": 64 * 1024, "signal_window_seconds": 60},
    )
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        alice, bob, room_id = await _pair(http)
        async with _connect(server, room_id, alice) as a, _connect(server, room_id, bob) as b:
            await _both_present(a)
            for _ in range(6):
                await a.send(_signal(bob["id"], 30_000))
            await a.send(json.dumps({"type": "ping", "time": 1}))
            codes = []
            async with asyncio.timeout(10):
                while (frame := json.loads(await a.recv()))["type"] != "pong":
                    if frame["type"] == "error":
                        codes.append(frame["code"])
            assert codes == ["rate_limited"] * 4
            # Bob got the two that fitted, and nothing else of them.
            await a.send(json.dumps({"type": "typing", "typing": True}))
            signals = 0
            async with asyncio.timeout(10):
                while (frame := json.loads(await b.recv()))["type"] != "typing":
                    signals += frame["type"] == "signal"
            assert signals == 2


async def _silent_socket(server: LiveServer, path: str) -> tuple[Any, Any]:
    """A WebSocket client that completes its handshake, then never reads (a tiny buffer)."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    port = int(server.url.rsplit(":", 1)[1])
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=raw)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer


async def test_a_flood_of_signals_never_drops_the_recipient(
    client: httpx.AsyncClient, make_settings: Callable[..., Settings]
) -> None:
    """Limits off (the budget cannot help): a lagging recipient skips signals, keeps its socket."""
    settings = make_settings(realtime={"send_queue_size": 8})
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        alice, bob, room_id = await _pair(http)
        _, writer = await _silent_socket(server, ws_path(room_id, bob["id"], bob["access_token"]))
        try:
            async with _connect(server, room_id, alice) as a:
                await _both_present(a)
                chunk = _signal(bob["id"], 30_000)
                for _ in range(300):  # 9 MB to a socket that reads nothing
                    await a.send(chunk)
                await a.send(json.dumps({"type": "ping", "time": 1}))
                await receive_until(a, "pong", timeout=60)  # every signal was handled
                hub = server.context.hub
                bobs = next(c for c in hub.connections(room_id) if c.user_id == bob["id"])
                assert not bobs.closed, "the recipient was dropped"
                # The room's own frames still reach him (his backlog has room for them).
                await a.send(json.dumps({"type": "typing", "typing": True}))
                await asyncio.sleep(0)
                assert not bobs.closed
        finally:
            writer.close()
