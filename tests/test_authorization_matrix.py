"""Every room endpoint and the socket x every kind of caller -> the documented answer."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import websockets

from tests.support import LiveServer, auth, connect_ws, create_guest, run_server, ws_path
from videochat.config import Settings
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


# Videos, live streams, WHIP and the lobby, in the same private room. {video} and
# {stream} were made by the owner; {knocker} is someone waiting in the lobby (a fresh
# one per persona). WHIP takes the stream key, never an account's token: 401 for all.
EXPECTED_MORE: dict[str, dict[str, int]] = {
    "POST /rooms/{room}/video-upload": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=200,
        muted=403,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "GET /rooms/{room}/videos": dict(
        anonymous=404,
        expired=401,
        outsider=404,
        member=200,
        muted=200,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "GET /videos/{video}": dict(
        anonymous=404,
        expired=401,
        outsider=404,
        member=200,
        muted=200,
        banned=404,
        moderator=200,
        owner=200,
    ),
    # The video is the owner's: a moderator ranks below them.
    "PATCH /videos/{video}": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=403,
        owner=200,
    ),
    "POST /rooms/{room}/live-stream": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=200,
        muted=403,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "GET /rooms/{room}/live-streams": dict(
        anonymous=404,
        expired=401,
        outsider=404,
        member=200,
        muted=200,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "GET /live-streams/{stream}": dict(
        anonymous=404,
        expired=401,
        outsider=404,
        member=200,
        muted=200,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "POST /whip/{stream}": dict(
        anonymous=401,
        expired=401,
        outsider=401,
        member=401,
        muted=401,
        banned=401,
        moderator=401,
        owner=401,
    ),
    "POST /rooms/{room}/lobby": dict(
        anonymous=401,
        expired=401,
        outsider=201,
        member=200,
        muted=200,
        banned=403,
        moderator=200,
        owner=200,
    ),
    "GET /rooms/{room}/lobby/me": dict(
        anonymous=401,
        expired=401,
        outsider=200,
        member=404,
        muted=404,
        banned=404,
        moderator=404,
        owner=404,
    ),
    "GET /rooms/{room}/lobby": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "POST /rooms/{room}/lobby/{knocker}/admit": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "POST /rooms/{room}/lobby/{knocker}/deny": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=200,
        owner=200,
    ),
    "POST /live-streams/{stream}/stop": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=200,
        owner=200,
    ),
    # Last: only the owner (the last persona) succeeds, and the video is gone after.
    "DELETE /videos/{video}": dict(
        anonymous=401,
        expired=401,
        outsider=404,
        member=403,
        muted=403,
        banned=404,
        moderator=403,
        owner=204,
    ),
}
BODIES = {
    "video-upload": {"title": "Clip"},
    "live-stream": {"title": "Show"},
    "{video}": {"title": "Renamed"},
}


async def _more_fixtures(
    client: httpx.AsyncClient, room: dict[str, Any], people: dict[str, Any]
) -> dict[str, Any]:
    owner = auth(people["owner"]["access_token"])
    video = await client.post(
        f"/rooms/{room['id']}/video-upload", json=BODIES["video-upload"], headers=owner
    )
    stream = await client.post(
        f"/rooms/{room['id']}/live-stream", json=BODIES["live-stream"], headers=owner
    )
    assert video.status_code == 200 and stream.status_code == 200, (video.text, stream.text)
    knockers: dict[str, str] = {}
    for action in ("admit", "deny"):
        for persona in PERSONAS:
            knocker = await create_guest(client, f"knocker-{action}-{persona}")
            knocked = await client.post(
                f"/rooms/{room['id']}/lobby", headers=auth(knocker["access_token"])
            )
            assert knocked.status_code == 201
            knockers[f"{action}-{persona}"] = knocker["id"]
    return {"video": video.json(), "stream": stream.json(), "knockers": knockers}


async def test_authorisation_matrix_for_videos_streams_and_the_lobby(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, people = await _personas(client, server)
    more = await _more_fixtures(client, room, people)
    mismatches = []
    for route, expected in EXPECTED_MORE.items():
        method, path = route.split(" ", 1)
        action = path.rsplit("/", 1)[-1]
        for persona in PERSONAS:
            url = path.format(
                room=room["id"],
                video=more["video"]["id"],
                stream=more["stream"]["id"],
                knocker=more["knockers"].get(f"{action}-{persona}", ""),
            )
            token = people[persona]["access_token"]
            headers = auth(token) if token else {}
            if path.startswith("/whip/"):
                headers = {**headers, "Content-Type": "application/sdp"}
                response = await client.request(method, url, content=b"v=0\r\n", headers=headers)
            else:
                body = BODIES.get(action)
                response = await client.request(method, url, json=body, headers=headers)
            if response.status_code != expected[persona]:
                mismatches.append(
                    f"{route} as {persona}: expected {expected[persona]}, "
                    f"got {response.status_code} {response.text[:120]}"
                )
    assert mismatches == []


async def test_stream_keys_and_private_videos_leak_nowhere(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, people = await _personas(client, server)
    more = await _more_fixtures(client, room, people)
    key = more["stream"]["stream_key"]
    assert key
    urls = [
        f"/rooms/{room['id']}/live-streams",
        f"/live-streams/{more['stream']['id']}",
        f"/rooms/{room['id']}/videos",
        f"/videos/{more['video']['id']}",
        f"/rooms/{room['id']}",
        "/rooms",
        f"/rooms/{room['id']}/lobby",
        f"/rooms/{room['id']}/lobby/me",
    ]
    for persona in PERSONAS:
        if persona == "owner":
            continue  # the stream's owner is the one who may see its key
        token = people[persona]["access_token"]
        headers = auth(token) if token else {}
        for url in urls:
            response = await client.get(url, headers=headers)
            assert key not in response.text, (persona, url)
            if persona in ("anonymous", "expired", "outsider", "banned"):
                assert more["video"]["id"] not in response.text or url.startswith("/videos/"), (
                    persona,
                    url,
                )
                assert response.status_code in (401, 403, 404) or url in (
                    "/rooms",
                    f"/rooms/{room['id']}/lobby/me",
                ), (persona, url, response.status_code)


# A public room: uploads and live streams for callers banned or muted after they made a
# slot and a stream. "own" is the caller's own slot or stream, made before the ban or mute.
# Allowed callers reach the next check (413: the body is over the test's 1 KiB limit; 409:
# a wrong tus offset; 400: an unusable SDP offer), refused ones stop at the policy (403).
PUBLIC_PERSONAS = ["anonymous", "outsider", "member", "muted", "banned", "moderator", "owner"]
EXPECTED_PUBLIC: dict[str, dict[str, int]] = {
    "POST /rooms/{room}/video-upload": dict(
        anonymous=401, outsider=200, member=200, muted=403, banned=403, moderator=200, owner=200
    ),
    "POST /uploads/tus": dict(
        anonymous=401, outsider=201, member=201, muted=403, banned=403, moderator=201, owner=201
    ),
    "PUT /upload-proxy/{own}": dict(
        anonymous=401, outsider=413, member=413, muted=403, banned=403, moderator=413, owner=413
    ),
    "PATCH /uploads/tus/{own}": dict(
        anonymous=401, outsider=409, member=409, muted=403, banned=403, moderator=409, owner=409
    ),
    "POST /rooms/{room}/live-stream": dict(
        anonymous=401, outsider=403, member=200, muted=403, banned=403, moderator=200, owner=200
    ),
    "POST /whip/{own}": dict(
        anonymous=401, outsider=401, member=400, muted=403, banned=403, moderator=400, owner=400
    ),
}


def _tus_metadata(room_id: str) -> str:
    pairs = {"room_id": room_id, "title": "Clip"}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


async def _public_personas(
    client: httpx.AsyncClient,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    people = {name: await create_guest(client, name) for name in PUBLIC_PERSONAS[1:]}
    owner = auth(people["owner"]["access_token"])
    room = (await client.post("/rooms", json={"name": "Public"}, headers=owner)).json()
    for name in ("member", "muted", "banned", "moderator"):
        await client.post(f"/rooms/{room['id']}/join", headers=auth(people[name]["access_token"]))
    base = f"/rooms/{room['id']}/members"
    await client.post(
        f"{base}/{people['moderator']['id']}/role", json={"role": "moderator"}, headers=owner
    )
    own: dict[str, dict[str, Any]] = {}
    for name, person in people.items():
        headers = auth(person["access_token"])
        slot = await client.post(
            f"/rooms/{room['id']}/video-upload", json=BODIES["video-upload"], headers=headers
        )
        stream = await client.post(
            f"/rooms/{room['id']}/live-stream", json=BODIES["live-stream"], headers=headers
        )
        own[name] = {"slot": slot.json(), "stream": stream.json() if stream.is_success else None}
    await client.post(f"{base}/{people['muted']['id']}/mute", headers=owner)
    await client.post(f"{base}/{people['banned']['id']}/ban", headers=owner)
    people["anonymous"] = {"id": people["member"]["id"], "access_token": None}
    own["anonymous"] = dict(own["member"])
    # Without a stream of one's own: the member's stream, without its key.
    keyless = {"whip_url": own["member"]["stream"]["whip_url"], "stream_key": None}
    for name in ("anonymous", "outsider"):
        own[name]["stream"] = keyless
    return room, people, own


async def _public_status(
    client: httpx.AsyncClient, route: str, room: dict[str, Any], person: Any, own: Any
) -> int:
    method, path = route.split(" ", 1)
    token = person["access_token"]
    headers = auth(token) if token else {}
    tus = {"Tus-Resumable": "1.0.0"}
    if path == "/uploads/tus":
        headers = {
            **headers,
            **tus,
            "Upload-Length": "10",
            "Upload-Metadata": _tus_metadata(room["id"]),
        }
        return (await client.post(path, headers=headers)).status_code
    if path.startswith("/upload-proxy/"):
        url = own["slot"]["upload_url"]
        return (await client.put(url, content=b"\0" * 2048, headers=headers)).status_code
    if path.startswith("/uploads/tus/"):
        headers = {
            **headers,
            **tus,
            "Upload-Offset": "5",
            "Content-Type": "application/offset+octet-stream",
        }
        url = own["slot"]["tus_url"]
        return (await client.patch(url, content=b"\0" * 10, headers=headers)).status_code
    if path.startswith("/whip/"):
        stream = own["stream"]
        key = stream["stream_key"]
        sdp = {"Content-Type": "application/sdp", **(auth(key) if key else {})}
        return (await client.post(stream["whip_url"], content=b"v=0\r\n", headers=sdp)).status_code
    body = BODIES[path.rsplit("/", 1)[-1]]
    return (
        await client.request(method, path.format(room=room["id"]), json=body, headers=headers)
    ).status_code


async def test_authorisation_matrix_for_uploads_and_live_in_a_public_room(
    make_settings: Callable[..., Settings],
) -> None:
    async with (
        run_server(make_settings(media={"max_upload_bytes": 1024})) as server,
        httpx.AsyncClient(base_url=server.url, timeout=15) as client,
    ):
        room, people, own = await _public_personas(client)
        mismatches = []
        for route, expected in EXPECTED_PUBLIC.items():
            for persona in PUBLIC_PERSONAS:
                got = await _public_status(client, route, room, people[persona], own[persona])
                if got != expected[persona]:
                    mismatches.append(
                        f"{route} as {persona}: expected {expected[persona]}, got {got}"
                    )
        assert mismatches == []
