"""Messages sent over the socket survive a hard restart of the server process."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import websockets.sync.client as ws_client

from tests.processes import free_port, server_env, start_server, stop_server


def test_messages_survive_kill_and_restart(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path, database_url)
    base = f"http://127.0.0.1:{port}"
    process = start_server(env, port)
    try:
        user = httpx.post(f"{base}/users", json={"username": "alice"}).json()
        headers = {"Authorization": f"Bearer {user['access_token']}"}
        room = httpx.post(f"{base}/rooms", json={"name": "Durable"}, headers=headers).json()
        url = f"ws://127.0.0.1:{port}/ws/{room['id']}/{user['id']}?token={user['access_token']}&v=2"
        acknowledged = []
        with ws_client.connect(url) as ws:
            for index in range(25):
                ws.send(json.dumps({"content": f"durable {index}"}))
            while len(acknowledged) < 25:
                frame = json.loads(ws.recv(timeout=10))
                if frame["type"] == "message":
                    acknowledged.append(frame["id"])
    finally:
        # No graceful shutdown: what was broadcast must already be on disk.
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    process = start_server(env, port)
    try:
        history = httpx.get(f"{base}/rooms/{room['id']}/messages", params={"limit": 100}).json()
        assert [m["id"] for m in history] == acknowledged
        assert [m["content"] for m in history] == [f"durable {i}" for i in range(25)]
        me = httpx.get(f"{base}/auth/me", headers=headers)
        assert me.status_code == 200  # the account and its token outlive the restart too
    finally:
        stop_server(process)
