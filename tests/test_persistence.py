"""Messages sent over the socket survive a hard restart of the server process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import websockets.sync.client as ws_client


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "videochat.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode() if process.stderr else "exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def test_messages_survive_kill_and_restart(database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "VIDEOCHAT_ENVIRONMENT": "test",
        "VIDEOCHAT_DATA_DIR": str(tmp_path),
        "VIDEOCHAT_DATABASE_URL": database_url,
        "VIDEOCHAT_RATE_LIMIT__ENABLED": "false",
        "VIDEOCHAT_LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{port}"
    process = _start(env, port)
    try:
        user = httpx.post(f"{base}/users", json={"username": "alice"}).json()
        headers = {"Authorization": f"Bearer {user['access_token']}"}
        room = httpx.post(f"{base}/rooms", json={"name": "Durable"}, headers=headers).json()
        url = f"ws://127.0.0.1:{port}/ws/{room['id']}/{user['id']}?token={user['access_token']}"
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

    process = _start(env, port)
    try:
        history = httpx.get(f"{base}/rooms/{room['id']}/messages", params={"limit": 100}).json()
        assert [m["id"] for m in history] == acknowledged
        assert [m["content"] for m in history] == [f"durable {i}" for i in range(25)]
        me = httpx.get(f"{base}/auth/me", headers=headers)
        assert me.status_code == 200  # the account and its token outlive the restart too
    finally:
        process.terminate()
        process.wait(10)
