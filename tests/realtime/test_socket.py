"""The chat socket over real WebSocket connections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import websockets
from sqlalchemy.engine import make_url

from tests.support import (
    LiveServer,
    collect,
    connect_ws,
    create_guest,
    create_room,
    eventually,
    logged_errors,
    receive_until,
    ws_path,
)
from videochat.chat import service as chat_service
from videochat.config import Settings
from videochat.kit.clock import utcnow
from videochat.rooms import service as rooms_service


async def _setup(
    client: httpx.AsyncClient, *names: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    users = [await create_guest(client, name) for name in names]
    room = await create_room(client, users[0]["access_token"], "Chat")
    return room, users


def _connect(server: LiveServer, room_id: str, user: dict[str, Any], **params: Any) -> Any:
    return connect_ws(server, ws_path(room_id, user["id"], user["access_token"], **params))


async def test_join_message_and_leave_frames(client: httpx.AsyncClient, server: LiveServer) -> None:
    room, (alice, bob) = await _setup(client, "alice", "bob")
    async with _connect(server, room["id"], alice) as a:
        joined = await receive_until(a, "user_joined")
        assert joined["message"] == "alice joined the chat" and joined["timestamp"]
        async with _connect(server, room["id"], bob) as b:
            bob_joined = await receive_until(a, "user_joined")
            assert bob_joined["message"] == "bob joined the chat"
            presence = await receive_until(b, "presence")
            assert {p["username"] for p in presence["participants"]} == {"alice", "bob"}

            await b.send(json.dumps({"content": "hello from bob"}))
            for socket in (a, b):  # everyone, the sender included
                frame = await receive_until(socket, "message")
                assert frame["content"] == "hello from bob"
                assert frame["username"] == "bob" and frame["user_id"] == bob["id"]
                assert isinstance(frame["id"], int) and frame["timestamp"].endswith("Z")
        left = await receive_until(a, "user_left")
        assert left["message"] == "bob left the chat"

    history = (await client.get(f"/rooms/{room['id']}/messages")).json()
    assert [m["content"] for m in history] == ["hello from bob"]


async def test_v2_message_frame_and_content_validation(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (alice,) = await _setup(client, "alice")
    async with _connect(server, room["id"], alice) as a:
        await a.send(json.dumps({"type": "message", "content": "  trimmed \u202e "}))
        assert (await receive_until(a, "message"))["content"] == "trimmed"
        for bad in (
            {"type": "message", "content": "   "},
            {"content": 42},
            {"content": "x" * 4001},
        ):
            await a.send(json.dumps(bad))
            error = await receive_until(a, "error")
            assert error["code"] == "invalid"
        await a.send("not json")
        assert (await receive_until(a, "error"))["code"] == "bad_frame"
        await a.send(json.dumps([1, 2]))
        assert (await receive_until(a, "error"))["code"] == "bad_frame"
        await a.send(json.dumps({"type": "teleport"}))
        assert (await receive_until(a, "error"))["code"] == "unknown_type"
        await a.send(json.dumps({"type": "ping", "time": 7}))
        assert (await receive_until(a, "pong"))["time"] == 7
    assert len((await client.get(f"/rooms/{room['id']}/messages")).json()) == 1


async def test_oversized_frame_closes_with_1009(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (alice,) = await _setup(client, "alice")
    async with _connect(server, room["id"], alice) as a:
        await a.send(json.dumps({"content": "x" * (server.settings.realtime.max_frame_bytes + 10)}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(a.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def _refused(server: LiveServer, path: str) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(server.ws_url + path):
            pass
    return refused.value.response.status_code


def _token(settings: Settings, subject: str, **changes: Any) -> str:
    now = utcnow()
    payload = {
        "sub": subject,
        "typ": "access",
        "jti": "t",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "iss": settings.jwt.issuer,
        "aud": settings.jwt.audience,
        **changes,
    }
    return jwt.encode(payload, settings.jwt.secret.get_secret_value(), algorithm="HS256")


async def test_handshake_refusals_are_403(client: httpx.AsyncClient, server: LiveServer) -> None:
    room, (alice, bob) = await _setup(client, "alice", "bob")
    secret_room = await create_room(client, alice["access_token"], "Secret", private=True)
    rid, uid = room["id"], alice["id"]
    settings = server.settings
    cases = {
        "missing token": ws_path(rid, uid),
        "invalid token": ws_path(rid, uid, "garbage"),
        "expired token": ws_path(
            rid, uid, _token(settings, uid, exp=utcnow() - timedelta(minutes=1))
        ),
        "someone else's token": ws_path(rid, uid, bob["access_token"]),
        "unknown room": ws_path("no-such-room", uid, alice["access_token"]),
        "unknown user": ws_path(rid, "ghost", _token(settings, "ghost")),
        "private room of others": ws_path(secret_room["id"], bob["id"], bob["access_token"]),
        "bad since": ws_path(rid, uid, alice["access_token"], since="abc"),
    }
    for reason, path in cases.items():
        assert await _refused(server, path) == 403, reason


async def test_owner_connects_to_private_room(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    secret = await create_room(client, alice["access_token"], "Secret", private=True)
    async with _connect(server, secret["id"], alice) as a:
        assert (await receive_until(a, "user_joined"))["username"] == "alice"


async def test_connecting_to_a_public_room_joins_it(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (_, bob) = await _setup(client, "alice", "bob")
    async with _connect(server, room["id"], bob) as b:
        await receive_until(b, "user_joined")
    users = (await client.get(f"/rooms/{room['id']}")).json()["users"]
    assert bob["id"] in users


async def test_reconnect_with_since_replays_missed_messages_first(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (alice, bob) = await _setup(client, "alice", "bob")
    async with _connect(server, room["id"], alice) as a:
        await a.send(json.dumps({"content": "seen"}))
        last_seen = (await receive_until(a, "message"))["id"]
        for index in range(5):
            await a.send(json.dumps({"content": f"missed {index}"}))
        await collect(a, "message", 5)

    async with (
        _connect(server, room["id"], bob) as b,
        _connect(server, room["id"], alice, since=last_seen) as a2,
    ):
        await receive_until(b, "user_joined")
        await b.send(json.dumps({"content": "live"}))
        frames = []
        async with asyncio.timeout(5):
            while len(frames) < 6:
                frame = json.loads(await a2.recv())
                if frame["type"] == "message":
                    frames.append(frame)
                elif not frames:
                    pytest.fail(f"a live {frame['type']} frame came before the replay")
    assert [f["content"] for f in frames] == [*(f"missed {i}" for i in range(5)), "live"]
    assert frames[0].keys() == frames[-1].keys()  # replayed frames look like live ones


async def test_replay_while_others_keep_sending_has_no_gap_or_duplicate(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (alice, bob) = await _setup(client, "alice", "bob")
    async with _connect(server, room["id"], bob) as b:
        await receive_until(b, "user_joined")
        for index in range(20):
            await b.send(json.dumps({"content": f"before {index}"}))
        await collect(b, "message", 20)

        sent = 0

        async def keep_sending() -> None:
            nonlocal sent
            for index in range(30):
                await b.send(json.dumps({"content": f"during {index}"}))
                sent += 1
                await asyncio.sleep(0.005)

        sender = asyncio.create_task(keep_sending())
        await eventually(lambda: sent >= 2)  # alice joins while bob is mid-stream
        async with _connect(server, room["id"], alice, since=0) as a:
            await sender
            received = await collect(a, "message", 50)
    ids = [f["id"] for f in received]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert [f["content"] for f in received][:20] == [f"before {i}" for i in range(20)]


async def test_ten_sockets_receive_every_message_in_the_same_order(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    names = [f"user{i}" for i in range(10)]
    room, users = await _setup(client, *names)
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(_connect(server, room["id"], u)) for u in users]
        senders = sockets[:5]
        await asyncio.gather(
            *(
                s.send(json.dumps({"content": f"{i}-{n}"}))
                for i, s in enumerate(senders)
                for n in range(4)
            )
        )
        results = await asyncio.gather(*(collect(s, "message", 20) for s in sockets))
    orders = [[f["id"] for f in frames] for frames in results]
    assert all(order == orders[0] for order in orders)
    assert orders[0] == sorted(orders[0]) and len(set(orders[0])) == 20


async def test_signal_goes_only_to_the_named_peer(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (alice, bob, carol) = await _setup(client, "alice", "bob", "carol")
    async with (
        _connect(server, room["id"], alice) as a,
        _connect(server, room["id"], bob) as b,
        _connect(server, room["id"], carol) as c,
    ):
        welcomes = [await receive_until(socket, "welcome") for socket in (a, b)]
        for socket in (a, b, c):
            await receive_until(socket, "presence")
        await receive_until(a, "user_joined")
        offer = {"description": {"type": "offer", "sdp": "v=0"}}
        await a.send(json.dumps({"type": "signal", "to": bob["id"], "data": offer}))
        got = await receive_until(b, "signal")
        assert got == {
            "type": "signal",
            "from": alice["id"],
            "from_connection": welcomes[0]["connection_id"],
            "to": bob["id"],
            "to_connection": welcomes[1]["connection_id"],
            "data": offer,
        }
        await c.send(json.dumps({"type": "ping"}))
        # Carol's next frames are her pong, never the signal meant for Bob.
        while True:
            frame = json.loads(await asyncio.wait_for(c.recv(), 5))
            assert frame["type"] != "signal"
            if frame["type"] == "pong":
                break
        await a.send(json.dumps({"type": "signal", "to": "stranger", "data": offer}))
        assert (await receive_until(a, "error"))["code"] == "peer_not_found"
        await a.send(json.dumps({"type": "signal", "to": bob["id"], "data": "nope"}))
        assert (await receive_until(a, "error"))["code"] == "bad_signal"


async def _no_signal_before_pong(socket: Any) -> None:
    """The socket's frames up to the answer to a ping hold no signal."""
    await socket.send(json.dumps({"type": "ping"}))
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert frame["type"] != "signal", frame
        if frame["type"] == "pong":
            return


async def test_signals_go_to_one_socket_of_a_user_with_two_tabs(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    """Bob has two tabs in the room: his latest one is in the call and gets his signals."""
    room, (alice, bob) = await _setup(client, "alice", "bob")
    offer = {"description": {"type": "offer", "sdp": "v=0"}}
    async with _connect(server, room["id"], alice) as a, _connect(server, room["id"], bob) as b1:
        alice_id = (await receive_until(a, "welcome"))["connection_id"]
        first = (await receive_until(b1, "welcome"))["connection_id"]
        async with _connect(server, room["id"], bob) as b2:
            second = (await receive_until(b2, "welcome"))["connection_id"]
            assert second != first

            # One entry for Bob, naming his latest socket.
            while True:
                presence = await receive_until(a, "presence")
                bobs = [p for p in presence["participants"] if p["user_id"] == bob["id"]]
                if bobs and bobs[0]["connection_id"] == second:
                    break
            assert len(presence["participants"]) == 2 and len(bobs) == 1
            mine = next(p for p in presence["participants"] if p["user_id"] == alice["id"])
            assert mine["connection_id"] == alice_id

            # Addressed to Bob: only his latest tab gets it.
            await a.send(json.dumps({"type": "signal", "to": bob["id"], "data": offer}))
            got = await receive_until(b2, "signal")
            assert (got["from_connection"], got["to_connection"]) == (alice_id, second)
            await _no_signal_before_pong(b1)

            # Addressed to one of his sockets by its id: only that one.
            await a.send(
                json.dumps(
                    {"type": "signal", "to": bob["id"], "to_connection": first, "data": offer}
                )
            )
            got = await receive_until(b1, "signal")
            assert got["to_connection"] == first
            await _no_signal_before_pong(b2)

            # A socket that is not that user's in this room is refused.
            for wrong in (alice_id, "no-such-connection"):
                frame = {"type": "signal", "to": bob["id"], "to_connection": wrong, "data": offer}
                await a.send(json.dumps(frame))
                assert (await receive_until(a, "error"))["code"] == "peer_not_found"
            await a.send(
                json.dumps({"type": "signal", "to": bob["id"], "to_connection": 7, "data": offer})
            )
            assert (await receive_until(a, "error"))["code"] == "bad_signal"

            # Each of Bob's tabs signals as itself.
            await b1.send(json.dumps({"type": "signal", "to": alice["id"], "data": offer}))
            assert (await receive_until(a, "signal"))["from_connection"] == first
            await b2.send(json.dumps({"type": "signal", "to": alice["id"], "data": offer}))
            assert (await receive_until(a, "signal"))["from_connection"] == second

        # The second tab closed: Bob has not left, his first tab is in the call again.
        while True:
            frame = json.loads(await asyncio.wait_for(a.recv(), 5))
            assert frame["type"] != "user_left", "one of two tabs closing is not leaving"
            if frame["type"] != "presence":
                continue
            bobs = [p for p in frame["participants"] if p["user_id"] == bob["id"]]
            if bobs and bobs[0]["connection_id"] == first:
                break
        await a.send(json.dumps({"type": "signal", "to": bob["id"], "data": offer}))
        assert (await receive_until(b1, "signal"))["to_connection"] == first
    # (Bob's last tab closing is leaving: test_join_message_and_leave_frames.)


async def test_typing_and_media_state(client: httpx.AsyncClient, server: LiveServer) -> None:
    room, (alice, bob) = await _setup(client, "alice", "bob")
    async with _connect(server, room["id"], alice) as a, _connect(server, room["id"], bob) as b:
        await receive_until(a, "presence")
        await a.send(json.dumps({"type": "typing", "typing": True}))
        typing = await receive_until(b, "typing")
        assert typing["user_id"] == alice["id"] and typing["typing"] is True
        await a.send(json.dumps({"type": "media_state", "audio": True, "video": False}))
        state = await receive_until(b, "media_state")
        assert state == {
            "type": "media_state",
            "user_id": alice["id"],
            "audio": True,
            "video": False,
            "screen": False,
        }
        # A toggle sends no new participant list; the next list (a join) carries it.
        carol = await create_guest(client, "carol")
        async with _connect(server, room["id"], carol) as c:
            presence = await receive_until(c, "presence")
        mine = next(p for p in presence["participants"] if p["user_id"] == alice["id"])
        assert mine["audio"] is True and mine["video"] is False


async def test_frame_rate_limit_sends_error_frames(
    client: httpx.AsyncClient, make_settings: Any
) -> None:
    from tests.support import run_server

    settings = make_settings(
        rate_limit={"enabled": True, "ws_frames": 5, "ws_frames_window_seconds": 60}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        room, (alice,) = await _setup(http, "alice")
        async with _connect(live, room["id"], alice) as a:
            for _ in range(8):
                await a.send(json.dumps({"type": "ping"}))
            error = await receive_until(a, "error")
            assert error["code"] == "rate_limited"
            # Keeping on after the warnings closes the socket with 4029.
            with pytest.raises(websockets.ConnectionClosed) as closed:
                for _ in range(30):
                    await a.send(json.dumps({"type": "ping"}))
                async with asyncio.timeout(5):
                    while True:
                        await a.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4029


@contextlib.asynccontextmanager
async def _messages_table_held(database_url: str) -> AsyncIterator[None]:
    """Another writer holds the messages table: the chat writer's next batch waits."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(str(url.database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("COMMIT")
            holder.close()
        return
    connection = await asyncpg.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE messages IN EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


async def test_a_socket_reads_on_while_its_message_is_being_stored(
    client: httpx.AsyncClient, server: LiveServer, database_url: str
) -> None:
    # A sender's next frame used to wait until its message was stored and broadcast:
    # its messages went one writer batch apart each, whatever the server's load.
    room, (alice, bob) = await _setup(client, "alice", "bob")
    async with _connect(server, room["id"], alice) as a, _connect(server, room["id"], bob) as b:
        await receive_until(a, "presence")
        async with _messages_table_held(database_url):
            await a.send(json.dumps({"type": "message", "content": "held back"}))
            await a.send(json.dumps({"type": "typing", "typing": True}))
            typing = await receive_until(b, "typing")
            assert typing["user_id"] == alice["id"]
        # Stored once the table is free, and only then broadcast (the sender's too).
        for socket in (a, b):
            message = await receive_until(socket, "message", timeout=15)
            assert message["content"] == "held back"
    history = (await client.get(f"/rooms/{room['id']}/messages")).json()
    assert [m["content"] for m in history] == ["held back"]


@pytest.mark.parametrize("step", ["second_look", "replay"])
async def test_a_database_outage_while_a_socket_opens_asks_it_to_come_back(
    client: httpx.AsyncClient,
    server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    step: str,
) -> None:
    """Once accepted, a socket still reads the database: the second look at its standing
    (a newcomer's) and the replay of what it missed. The database going away right then
    ended the socket as a crash (1011, "Exception in ASGI application"); it is closed with
    1013 (try again later) and reconnects once the database is back."""
    room, (alice, bob) = await _setup(client, "alice", "bob")

    async def database_away(*_: object, **__: object) -> None:
        raise ConnectionRefusedError("the database is restarting")

    if step == "second_look":
        target, user, params = rooms_service, bob, {}  # bob is new to the room
        name = "standing_now"
    else:
        target, user, params = chat_service, alice, {"since": 0}
        name = "missed"
    monkeypatch.setattr(target, name, database_away)
    with caplog.at_level(logging.INFO):
        async with _connect(server, room["id"], user, **params) as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await socket.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, "database unavailable")
    assert logged_errors(caplog) == []
