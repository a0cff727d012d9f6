"""Sign-out (``POST /auth/logout``) and one-time socket tickets (``POST /auth/socket-ticket``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
import websockets

from tests import services
from tests.support import (
    LiveServer,
    auth,
    connect_ws,
    create_guest,
    create_room,
    receive_until,
    run_server,
    ws_path,
)
from videochat.config import Settings
from videochat.kit.clock import utcnow

PASSWORD = "correct horse battery"


async def test_logout_revokes_the_refresh_token_family(client: httpx.AsyncClient) -> None:
    pair = (
        await client.post("/auth/register", json={"username": "leaver", "password": PASSWORD})
    ).json()
    rotated = (
        await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    ).json()
    out = await client.post("/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert out.status_code == 204
    again = await client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status_code == 401
    assert again.json()["detail"] == "Refresh token has been revoked"
    # Idempotent, and another session of the account is left alone.
    repeated = await client.post("/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert repeated.status_code == 204
    other = (
        await client.post("/auth/login", json={"username": "leaver", "password": PASSWORD})
    ).json()
    fine = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert fine.status_code == 200


async def test_logout_refuses_what_is_not_a_refresh_token(client: httpx.AsyncClient) -> None:
    guest = await create_guest(client, "guesty")
    bad = await client.post("/auth/logout", json={"refresh_token": guest["access_token"]})
    assert bad.status_code == 401
    assert (await client.post("/auth/logout", json={})).status_code == 422


async def _ticket(client: httpx.AsyncClient, token: str) -> str:
    response = await client.post("/auth/socket-ticket", headers=auth(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 30
    ticket: str = body["ticket"]
    return ticket


async def _refused(server: LiveServer, path: str) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect_ws(server, path):
            pass
    return int(refused.value.response.status_code)


async def test_a_socket_ticket_opens_one_socket_once(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    assert (await client.post("/auth/socket-ticket")).status_code == 401
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    ticket = await _ticket(client, alice["access_token"])
    path = ws_path(room["id"], alice["id"], ticket=ticket)
    async with connect_ws(server, path) as ws:
        assert (await receive_until(ws, "user_joined"))["message"] == "alice joined the chat"
    assert await _refused(server, path) == 403  # spent
    # Only for its own user, and an access token is no ticket (nor a ticket a token).
    bob = await create_guest(client, "bob")
    bobs = await _ticket(client, bob["access_token"])
    assert await _refused(server, ws_path(room["id"], alice["id"], ticket=bobs)) == 403
    fresh = await _ticket(client, alice["access_token"])
    assert await _refused(server, ws_path(room["id"], alice["id"], token=fresh)) == 403
    as_ticket = ws_path(room["id"], alice["id"], ticket=alice["access_token"])
    assert await _refused(server, as_ticket) == 403
    # ?token= still works, for older clients.
    async with connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])):
        pass


async def test_an_expired_ticket_is_refused(
    client: httpx.AsyncClient, server: LiveServer, settings: Settings
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    now = utcnow()
    stale = jwt.encode(
        {
            "sub": alice["id"],
            "typ": "socket",
            "jti": "old",
            "iat": now - timedelta(minutes=2),
            "exp": now - timedelta(minutes=1),
            "iss": settings.jwt.issuer,
            "aud": settings.jwt.audience,
        },
        settings.jwt.secret.get_secret_value(),
        algorithm="HS256",
    )
    assert await _refused(server, ws_path(room["id"], alice["id"], ticket=stale)) == 403


async def test_concurrent_uses_of_one_ticket_let_one_in(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    path = ws_path(room["id"], alice["id"], ticket=await _ticket(client, alice["access_token"]))

    async def attempt() -> bool:
        try:
            async with connect_ws(server, path):
                return True
        except websockets.InvalidStatus:
            return False

    assert sorted(await asyncio.gather(*(attempt() for _ in range(8)))) == [False] * 7 + [True]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_ticket_is_single_use_across_instances(make_settings: Any) -> None:
    """With Redis, a ticket spent on one instance is refused by another."""
    services.redis_available()
    settings = make_settings(redis={"url": services.REDIS_URL})
    async with run_server(settings) as first, run_server(settings) as second:
        async with httpx.AsyncClient(base_url=first.url) as http:
            alice = await create_guest(http, "alice")
            room = await create_room(http, alice["access_token"])
            ticket = await _ticket(http, alice["access_token"])
        path = ws_path(room["id"], alice["id"], ticket=ticket)
        async with connect_ws(first, path):
            pass
        assert await _refused(second, path) == 403
