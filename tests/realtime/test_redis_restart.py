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
from tests.processes import (
    ThrowawayRedis,
    free_port,
    server_env,
    start_redis,
    start_server,
    stop_server,
)
from tests.support import receive_until


def _socket(base: str, room_id: str, user: dict[str, Any]) -> Any:
    url = (
        base.replace("http", "ws", 1)
        + f"/ws/{room_id}/{user['id']}?token={user['access_token']}&v=2"
    )
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


async def _message_ids(socket: Any, want: set[int], seconds: float) -> list[int]:
    """Message ids arriving on the socket until ``want`` are all in, or time is up."""
    got: list[int] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while not want <= set(got):
                frame = json.loads(await socket.recv())
                if frame["type"] == "message":
                    got.append(frame["id"])
    return got


@pytest.mark.postgres
@pytest.mark.redis
async def test_sockets_catch_up_on_what_they_missed_during_a_redis_outage(
    postgres_url: str, tmp_path: Path
) -> None:
    """Messages sent on the other instance while Redis was away arrive once it is back."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    services.require_service("PostgreSQL", services.PG_HOST, services.PG_PORT)
    await services.empty_pg_database(postgres_url)
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    processes = []
    try:
        urls = []
        for name in ("a", "b"):
            port = free_port()
            env = server_env(tmp_path / name, postgres_url, VIDEOCHAT_REDIS__URL=redis.url)
            processes.append(await asyncio.to_thread(start_server, env, port))
            urls.append(f"http://127.0.0.1:{port}")
        a_url, b_url = urls
        async with httpx.AsyncClient(base_url=a_url) as http:
            alice = (await http.post("/users", json={"username": "alice"})).json()
            bob = (await http.post("/users", json={"username": "bob"})).json()
            headers = {"Authorization": f"Bearer {alice['access_token']}"}
            room = (await http.post("/rooms", json={"name": "Outage"}, headers=headers)).json()
        async with _socket(a_url, room["id"], alice) as a, _socket(b_url, room["id"], bob) as b:
            await receive_until(b, "presence")
            seen: dict[str, list[int]] = {"a": [], "b": []}
            await a.send(json.dumps({"content": "before"}))
            seen["a"].append((await receive_until(a, "message"))["id"])
            seen["b"].append((await receive_until(b, "message"))["id"])

            redis.stop()
            # Each side keeps talking: acknowledged (stored, delivered to its own sockets).
            for index in range(5):
                for name, socket in (("a", a), ("b", b)):
                    await socket.send(json.dumps({"content": f"{name} during {index}"}))
                    seen[name].append((await receive_until(socket, "message", timeout=10))["id"])
            redis.start()

            async with httpx.AsyncClient(base_url=a_url) as http:
                history = (
                    await http.get(f"/rooms/{room['id']}/messages", params={"limit": 100})
                ).json()
            everything = {m["id"] for m in history}
            assert len(everything) == 11
            for name, socket in (("a", a), ("b", b)):
                seen[name] += await _message_ids(socket, everything - set(seen[name]), 20)
            for name in ("a", "b"):
                # Every message once, none missing; what was missed arrives in id order.
                assert sorted(seen[name]) == sorted(everything), (name, seen[name])
                caught_up = seen[name][6:]
                assert caught_up == sorted(caught_up)
    finally:
        for process in processes:
            stop_server(process)
        redis.stop()


@pytest.mark.redis
async def test_presence_is_reasserted_after_redis_comes_back_from_a_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Who left before or during the outage is not listed once Redis is back; who stayed is."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    from redis.asyncio import Redis

    from tests.support import connect_ws, create_guest, create_room, run_server, ws_path
    from videochat.config import Settings
    from videochat.realtime import presence

    monkeypatch.setattr(presence, "HEARTBEAT_SECONDS", 0.5)
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    settings = Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        redis={"url": redis.url},
        rate_limit={"enabled": False},
        log_level="WARNING",
    )
    try:
        async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
            people = [await create_guest(http, name) for name in ("alice", "bob", "carol")]
            alice, bob, carol = people
            room = await create_room(http, alice["access_token"], "Snapshot")

            def path(user: dict[str, Any]) -> str:
                return ws_path(room["id"], user["id"], user["access_token"])

            async def names() -> list[str]:
                listed = await live.context.hub.participants(room["id"])
                return sorted(p["username"] for p in listed)

            a = await connect_ws(live, path(alice)).__aenter__()
            b = await connect_ws(live, path(bob)).__aenter__()
            c = await connect_ws(live, path(carol)).__aenter__()
            await receive_until(c, "presence")
            assert await names() == ["alice", "bob", "carol"]
            client = Redis.from_url(redis.url)
            await client.save()  # the snapshot Redis will come back from
            await client.aclose()
            await c.close()  # left after the snapshot, Redis up: deleted, then restored
            await asyncio.sleep(0.3)
            redis.stop()
            await b.close()  # left during the outage: Redis never heard of it
            await asyncio.sleep(0.3)
            assert await names() == ["alice"]  # the instance's own view meanwhile
            redis.start()  # loads the snapshot: alice, bob and carol listed there
            async with asyncio.timeout(15):
                while await names() != ["alice"]:
                    await asyncio.sleep(0.2)
            # Who stayed is listed through Redis again, from any reader.
            reader = Redis.from_url(redis.url, decode_responses=True)
            entries = await reader.hgetall(f"videochat:presence:{room['id']}")
            await reader.aclose()
            assert sorted(json.loads(v)["username"] for v in entries.values()) == ["alice"]
            await a.close()
    finally:
        redis.stop()


class _Socket:
    """Just the fields presence reads from a connection."""

    def __init__(self, room_id: str, username: str) -> None:
        self.id = f"c-{username}"
        self.room_id, self.user_id, self.username = room_id, f"u-{username}", username
        self.media = {"audio": False, "video": False, "screen": False}
        self.connected_at = 0.0


@pytest.mark.redis
async def test_a_heartbeat_notices_redis_restored_from_an_older_snapshot(tmp_path: Path) -> None:
    """Removals that reached Redis after its snapshot are made again (epoch check)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    from redis.asyncio import Redis

    from videochat.realtime.presence import RedisPresence

    redis = ThrowawayRedis(tmp_path)
    redis.start()
    mine, other = RedisPresence(redis.url), RedisPresence(redis.url)
    try:
        await mine.start()
        await other.start()
        stays: Any = _Socket("r1", "stays")
        leaves: Any = _Socket("r1", "leaves")
        elsewhere: Any = _Socket("r2", "elsewhere")
        for socket in (stays, leaves, elsewhere):
            await mine.add(socket)
        await other.add(_Socket("r1", "other"))  # not this instance's: never touched
        await mine.sync()
        await other.sync()
        client = Redis.from_url(redis.url)
        await client.save()
        await client.aclose()
        await mine.remove(leaves)  # Redis up: deleted for real, but after the snapshot
        await mine.remove(elsewhere)
        redis.stop()
        redis.start()  # back from the snapshot: both entries are there again
        assert {e["username"] for e in await mine.entries("r1")} == {"stays", "leaves", "other"}
        await mine.sync()
        assert {e["username"] for e in await mine.entries("r1")} == {"stays", "other"}
        assert await mine.entries("r2") == []
    finally:
        await mine.stop()
        await other.stop()
        redis.stop()


@pytest.mark.redis
async def test_the_job_queue_defers_enqueues_while_redis_is_away(tmp_path: Path) -> None:
    """An upload's enqueue neither raises nor hangs; the workers' re-check queues it later."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    from videochat.config import Settings
    from videochat.media.worker import RedisJobQueue

    redis = ThrowawayRedis(tmp_path)
    redis.start()
    queue = RedisJobQueue(Settings(environment="test", redis={"url": redis.url}))
    await queue.start()
    try:
        redis.stop()
        async with asyncio.timeout(10):
            await queue.enqueue("video-during-outage")
        redis.start()
        await queue.enqueue("video-after")
        assert (await queue.refresh_stats())[0] == 1
    finally:
        with contextlib.suppress(Exception):
            await queue.stop()
        redis.stop()
