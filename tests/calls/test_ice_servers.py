"""``GET /rtc/ice-servers``: STUN/TURN from settings, TURN REST credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx

from tests.support import auth, create_guest, run_server
from videochat.calls.service import turn_credentials


def test_turn_credentials_follow_the_turn_rest_scheme() -> None:
    username, password = turn_credentials("s3cret", "user-1", 600, now=1_000_000)
    assert username == "1000600:user-1"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1000600:user-1", hashlib.sha1).digest())
    assert password == expected.decode()


async def test_ice_servers_need_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/rtc/ice-servers")).status_code == 401


async def test_ice_servers_without_configuration(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    body = (await client.get("/rtc/ice-servers", headers=auth(alice["access_token"]))).json()
    assert body["ice_servers"] == []
    assert body["ice_transport_policy"] == "all" and body["max_call_size"] == 6


async def test_ice_servers_with_stun_and_turn(make_settings: Any) -> None:
    settings = make_settings(
        stun={"urls": ["stun:stun.example:3478"]},
        turn={
            "urls": ["turn:turn.example:3478?transport=udp"],
            "secret": "topsecret",
            "ttl_seconds": 120,
        },
        calls={"ice_transport_policy": "relay", "max_call_size": 4},
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        alice = await create_guest(http, "alice")
        body = (await http.get("/rtc/ice-servers", headers=auth(alice["access_token"]))).json()
    stun, turn = body["ice_servers"]
    assert stun == {"urls": ["stun:stun.example:3478"]}
    expiry, user_id = turn["username"].split(":")
    assert user_id == alice["id"]
    assert 100 <= int(expiry) - time.time() <= 121
    digest = hmac.new(b"topsecret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()
    assert body["ice_transport_policy"] == "relay" and body["max_call_size"] == 4
