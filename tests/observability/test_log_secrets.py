"""JSON logs name the request, user and room, and never contain a token, key or password."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support import auth, collect, connect_ws, create_room, run_server, ws_path
from videochat.config import Settings
from videochat.observability.logging import redact

PASSWORD = "correct-horse-battery-staple"


async def _workload(http: httpx.AsyncClient, live: Any) -> tuple[list[str], dict[str, str]]:
    """A representative session (accounts, room, socket, live, WHIP); returns the secrets used."""
    secrets: list[str] = [PASSWORD]
    registered = await http.post("/auth/register", json={"username": "alice", "password": PASSWORD})
    assert registered.status_code in {200, 201}, registered.text
    logged_in = await http.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert logged_in.status_code == 200
    wrong = await http.post("/auth/login", json={"username": "alice", "password": PASSWORD + "x"})
    assert wrong.status_code == 401
    pair = logged_in.json()
    refreshed = await http.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    token = refreshed.json()["access_token"]
    secrets += [
        pair["access_token"],
        pair["refresh_token"],
        token,
        refreshed.json()["refresh_token"],
    ]
    alice_id = pair["user"]["id"]

    guest = (await http.post("/users", json={"username": "bob"})).json()
    secrets.append(guest["access_token"])
    room = await create_room(http, token, "Lounge")
    assert (await http.get(f"/rooms/{room['id']}", headers=auth(token))).status_code == 200
    # A token in a query string, where a careless log would print it.
    await http.get("/rooms", params={"token": token})

    async with connect_ws(live, ws_path(room["id"], alice_id, token)) as ws:
        await ws.send(json.dumps({"content": "hello"}))
        await collect(ws, "message", 1)
    bad = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJub2JvZHkifQ.c2lnbmF0dXJlLW5vdC12YWxpZA"
    secrets.append(bad)
    try:
        async with connect_ws(live, ws_path(room["id"], alice_id, bad)):
            pass
    except Exception:
        pass  # refused at the handshake, as it should be

    stream = await http.post(
        f"/rooms/{room['id']}/live-stream", json={"title": "Show"}, headers=auth(token)
    )
    assert stream.status_code == 200, stream.text
    key = stream.json()["stream_key"]
    secrets.append(key)
    # WHIP-like publishes with the stream key as the bearer: a bad body, then a wrong key.
    whip = f"/whip/{stream.json()['id']}"
    await http.post(whip, content=b"not sdp", headers={**auth(key), "Content-Type": "text/plain"})
    await http.post(
        whip, content=b"v=0", headers={**auth(key + "x"), "Content-Type": "application/sdp"}
    )
    return secrets, {"user_id": alice_id, "room_id": room["id"]}


async def test_no_secret_reaches_the_log(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "videochat.jsonl"
    settings = make_settings(log_json=True, log_file=log_file, log_level="DEBUG")
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        secrets, ids = await _workload(http, live)
    for handler in logging.getLogger().handlers:
        handler.flush()
    secrets.append(settings.jwt.secret.get_secret_value())

    lines = log_file.read_text().splitlines()
    assert len(lines) > 20
    events = [json.loads(line) for line in lines]  # every line is JSON
    for line in lines:
        leaked = [secret for secret in secrets if secret in line]
        assert not leaked, f"secret in log line: {line}"

    requests = [e for e in events if e.get("event") == "http.request"]
    assert all(e.get("request_id") for e in requests)
    room_reads = [e for e in requests if e.get("route") == "/rooms/{room_id}"]
    assert room_reads and room_reads[0]["user_id"] == ids["user_id"]
    assert room_reads[0]["room_id"] == ids["room_id"]
    connected = [e for e in events if e.get("event") == "ws.connected"]
    disconnected = [e for e in events if e.get("event") == "ws.disconnected"]
    assert connected and disconnected
    for event in (connected[0], disconnected[0]):
        assert event["room_id"] == ids["room_id"] and event["user_id"] == ids["user_id"]
        assert event["request_id"]
    assert disconnected[0]["reason"] == "normal"
    assert any(e.get("event") == "ws.refused" for e in events)


def test_redact_masks_bearer_tokens_and_query_secrets() -> None:
    text = "GET /ws/r/u?token=abc.def.ghi&since=3 Authorization: Bearer s3cr3t stream_key=k1"
    masked = redact(text)
    assert "abc.def.ghi" not in masked and "s3cr3t" not in masked and "k1" not in masked
    assert "since=3" in masked
