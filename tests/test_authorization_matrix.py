"""Every room endpoint and the socket x every kind of caller -> the documented answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import jwt
import websockets

from tests.support import LiveServer, auth, connect_ws, create_guest, ws_path
from videochat.kit.clock import utcnow

PERSONAS = ["anonymous", "expired", "outsider", "member", "muted", "banned", "moderator", "owner"]

# Private room: outsiders (and the banned, who lost membership) get 404 so that the
# room's existence does not leak; members 403 on moderator-only actions.
EXPECTED: dict[str, dict[str, int]] = {
    "GET /rooms/{room}": dict(
        anonymous=404,
        expired=401,
        outsider=404,
        member=200,
        muted=200,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "GET /rooms/{room}/messages": dict(
        anonymous=404,
        expired=401,
        outsider=404,
        member=200,
        muted=200,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "GET /rooms/{room}/members": dict(
        anonymous=404,
        expired=401,
        outsider=404,
        member=200,
        muted=200,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "POST /rooms/{room}/join": dict(
        anonymous=401,
        expired=401,
        outsider=403,
        member=200,
        muted=200,
        banned=403,
        moderator=200,
        owner=200,
    ),
    "POST /rooms/{room}/invites": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=201,
        owner=201,
    ),
    "GET /rooms/{room}/bans": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "POST /rooms/{room}/members/{victim}/mute": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "POST /rooms/{room}/members/{victim}/role": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=403,
        owner=200,
    ),
    "WS /ws/{room}/{self}": dict(
        anonymous=403,
        expired=403,
        outsider=403,
        member=101,
        muted=101,
        banned=403,
        moderator=101,
        owner=101,
    ),
}


async def _personas(
    client: httpx.AsyncClient, server: LiveServer
) -> tuple[dict[str, Any], dict[str, Any]]:
    people = {name: await create_guest(client, name) for name in PERSONAS[2:]}
    people["victim"] = await create_guest(client, "victim")
    owner = people["owner"]
    room = (
        await client.post(
            "/rooms",
            json={"name": "Matrix", "is_private": True},
            headers=auth(owner["access_token"]),
        )
    ).json()
    for name in ("member", "muted", "banned", "moderator", "victim"):
        joined = await client.post(
            f"/rooms/{room['id']}/join",
            json={"invite_code": room["invite_code"]},
            headers=auth(people[name]["access_token"]),
        )
        assert joined.status_code == 200
    owner_headers = auth(owner["access_token"])
    base = f"/rooms/{room['id']}/members"
    await client.post(
        f"{base}/{people['moderator']['id']}/role",
        json={"role": "moderator"},
        headers=owner_headers,
    )
    await client.post(f"{base}/{people['muted']['id']}/mute", headers=owner_headers)
    await client.post(f"{base}/{people['banned']['id']}/ban", headers=owner_headers)
    settings = server.settings
    expired = jwt.encode(
        {
            "sub": people["member"]["id"],
            "typ": "access",
            "jti": "e",
            "iat": utcnow() - timedelta(hours=2),
            "exp": utcnow() - timedelta(hours=1),
            "iss": settings.jwt.issuer,
            "aud": settings.jwt.audience,
        },
        settings.jwt.secret.get_secret_value(),
        algorithm="HS256",
    )
    people["expired"] = {**people["member"], "access_token": expired}
    people["anonymous"] = {"id": people["member"]["id"], "access_token": None}
    return room, people


async def _http_status(
    client: httpx.AsyncClient,
    route: str,
    room: dict[str, Any],
    people: dict[str, Any],
    persona: str,
) -> int:
    method, path = route.split(" ", 1)
    url = path.format(room=room["id"], victim=people["victim"]["id"])
    token = people[persona]["access_token"]
    headers = auth(token) if token else {}
    body: dict[str, Any] | None = {"role": "member"} if url.endswith("/role") else {}
    response = await client.request(method, url, json=body, headers=headers)
    return response.status_code


async def _ws_status(server: LiveServer, room: dict[str, Any], person: dict[str, Any]) -> int:
    try:
        async with connect_ws(server, ws_path(room["id"], person["id"], person["access_token"])):
            return 101
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


async def test_authorisation_matrix(client: httpx.AsyncClient, server: LiveServer) -> None:
    room, people = await _personas(client, server)
    mismatches = []
    for route, expected in EXPECTED.items():
        for persona in PERSONAS:
            if route.startswith("WS"):
                got = await _ws_status(server, room, people[persona])
            else:
                got = await _http_status(client, route, room, people, persona)
            if got != expected[persona]:
                mismatches.append(f"{route} as {persona}: expected {expected[persona]}, got {got}")
    assert mismatches == []


async def test_private_room_leaks_nowhere(client: httpx.AsyncClient, server: LiveServer) -> None:
    room, people = await _personas(client, server)
    for persona in ("anonymous", "outsider", "banned"):
        token = people[persona]["access_token"]
        listed = (await client.get("/rooms", headers=auth(token) if token else {})).json()
        assert room["id"] not in {r["id"] for r in listed}, persona
    member_view = (
        await client.get(f"/rooms/{room['id']}", headers=auth(people["member"]["access_token"]))
    ).json()
    assert member_view["invite_code"] is None  # the invite is for managers only
