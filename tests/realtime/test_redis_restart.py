"""Redis restarts under two instances: both recover by themselves, nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests import services
from tests.processes import free_port, server_env, start_redis, start_server, stop_server
from tests.support import receive_until


def _socket(base: str, room_id: str, user: dict[str, Any]) -> Any:
    url = base.replace("http", "ws", 1) + f"/ws/{room_id}/{user['id']}?token={user['access_token']}"
    return websockets.connect(url, max_queue=None)


async def _messages(socket: Any, seconds: float) -> list[dict[str, Any]]:
    """Every message frame that arrives within ``seconds``."""
    found: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                frame = json.loads(await socket.recv())
                if frame["type"] == "message":
                    found.append(frame)
    return found


@pytest.mark.postgres
@pytest.mark.redis
async def test_redis_restart_is_survived(postgres_url: str, tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    services.require_service("PostgreSQL", services.PG_HOST, services.PG_PORT)
    await services.empty_pg_database(postgres_url)
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis = start_redis(redis_port, tmp_path)
    processes = []
    try:
        urls = []
        for name in ("a", "b"):
            port = free_port()
            env = server_env(tmp_path / name, postgres_url, VIDEOCHAT_REDIS__URL=redis_url)
            processes.append(await asyncio.to_thread(start_server, env, port))
            urls.append(f"http://127.0.0.1:{port}")
        a_url, b_url = urls
        async with httpx.AsyncClient(base_url=a_url) as http:
            alice = (await http.post("/users", json={"username": "alice"})).json()
            bob = (await http.post("/users", json={"username": "bob"})).json()
            headers = {"Authorization": f"Bearer {alice['access_token']}"}
            room = (await http.post("/rooms", json={"name": "Resilient"}, headers=headers)).json()
        async with _socket(a_url, room["id"], alice) as a, _socket(b_url, room["id"], bob) as b:
            await receive_until(b, "presence")
            await a.send(json.dumps({"content": "before"}))
            assert (await receive_until(b, "message"))["content"] == "before"
            acknowledged = [(await receive_until(a, "message"))["id"]]

            redis.terminate()
            redis.wait(10)
            await a.send(json.dumps({"content": "during the outage"}))
            # The sender still gets its acknowledgement: stored, delivered locally.
            acknowledged.append((await receive_until(a, "message", timeout=10))["id"])

            redis = start_redis(redis_port, tmp_path)
            # Both instances reconnect by themselves: keep probing until Bob hears Alice.
            heard = []
            for attempt in range(40):
                await a.send(json.dumps({"content": f"probe {attempt}"}))
                acknowledged.append((await receive_until(a, "message", timeout=10))["id"])
                heard = [m for m in await _messages(b, 0.5) if m["content"].startswith("probe")]
                if heard:
                    break
            assert heard, "the instances did not recover after Redis came back"

        for base in (a_url, b_url):
            async with httpx.AsyncClient(base_url=base) as http:
                assert (await http.get("/health")).status_code == 200
                history = (
                    await http.get(f"/rooms/{room['id']}/messages", params={"limit": 100})
                ).json()
                assert set(acknowledged) <= {m["id"] for m in history}
    finally:
        for process in processes:
            stop_server(process)
        redis.kill()
        redis.wait(5)
