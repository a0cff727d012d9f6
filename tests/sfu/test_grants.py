"""Grants admit people to a room's VideoRoom on a real Janus; moderation reaches Janus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.sfu.conftest import sfu_settings
from tests.sfu.janus_publisher import bind_handle
from tests.sfu.janus_server import Janus
from tests.support import LiveServer, auth, create_guest, room_with_people, run_server
from videochat.config import Settings
from videochat.db.models import SfuGrant, SfuRoom
from videochat.db.unit_of_work import unit_of_work
from videochat.kit.clock import utcnow
from videochat.sfu.janus import UNAUTHORIZED, JanusAdmin, JanusError, JanusSession

pytestmark = pytest.mark.slow


_room = partial(room_with_people, name="Big call")


async def _grant(
    client: httpx.AsyncClient, room: dict[str, Any], person: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/rooms/{room['id']}/call/sfu-grant", headers=auth(person["access_token"])
    )


def _admin(janus: Janus, http: httpx.AsyncClient) -> JanusAdmin:
    return JanusAdmin(http, janus.admin_url, janus.admin_secret)


async def _participants(janus: Janus, http: httpx.AsyncClient, room: int) -> list[int]:
    answer = await _admin(janus, http).videoroom({"request": "listparticipants", "room": room})
    return [int(p["id"]) for p in answer.get("participants", [])]


async def _join(
    http: httpx.AsyncClient,
    grant: dict[str, Any],
    register: Callable[[int, int], Awaitable[None]] | None = None,
    **join: Any,
) -> tuple[JanusSession, dict[str, Any]]:
    """What a browser does with a grant: a session, a VideoRoom handle (bound to the
    grant with ``register``), a publisher join."""
    session = JanusSession(http, grant["janus_url"], token=grant["token"])
    await session.create()
    handle = await session.attach()
    if register is not None:
        assert session.id is not None
        await register(session.id, handle)
    body = {
        "request": "join",
        "ptype": "publisher",
        "room": grant["room"],
        "id": grant["publisher_id"],
        "token": grant["token"],
        **join,
    }
    ack = await session.message(handle, body)
    assert ack["janus"] == "ack", ack
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for event in await session.events():
            data = (event.get("plugindata") or {}).get("data") or {}
            if data.get("videoroom") in ("joined", "event") and event.get("sender") == handle:
                return session, data
    raise AssertionError("no answer to the join")


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.1)


async def test_a_grant_lets_a_janus_session_join_the_room_as_publisher(
    sfu_client: httpx.AsyncClient, janus: Janus
) -> None:
    room, (alice,) = await _room(sfu_client, "alice")
    response = await _grant(sfu_client, room, alice)
    assert response.status_code == 200, response.text
    grant = response.json()
    assert grant["janus_url"] == janus.api_url
    assert grant["ttl_seconds"] == 300
    async with httpx.AsyncClient(timeout=10) as http:
        session, joined = await _join(http, grant)
        assert joined["videoroom"] == "joined", joined
        assert joined["id"] == grant["publisher_id"]
        assert await _participants(janus, http, grant["room"]) == [grant["publisher_id"]]
        # Asking again renews the same admission.
        again = (await _grant(sfu_client, room, alice)).json()
        assert (again["token"], again["publisher_id"]) == (grant["token"], grant["publisher_id"])
        assert again["expires_at"] >= grant["expires_at"]
        await session.destroy()


async def test_janus_refuses_without_a_grant_and_a_grant_opens_only_its_room(
    sfu_client: httpx.AsyncClient, janus: Janus
) -> None:
    first, (_, bob) = await _room(sfu_client, "alice", "bob")
    second, (carol,) = await _room(sfu_client, "carol")
    async with httpx.AsyncClient(timeout=10) as http:
        for token in (None, "vc1-0-made-up"):
            with pytest.raises(JanusError) as refused:
                await JanusSession(http, janus.api_url, token=token).create()
            assert refused.value.code == UNAUTHORIZED
        # Bob's grant is for the first room: the second room's ACL does not list it.
        grant = (await _grant(sfu_client, first, bob)).json()
        other = (await _grant(sfu_client, second, carol)).json()
        session, answer = await _join(http, {**grant, "room": other["room"]})
        assert answer.get("error_code") == 433, answer  # not in the allowed list
        assert await _participants(janus, http, other["room"]) == []
        # Nor can a participant use the Janus API to create rooms (the admin key).
        handle = await session.attach()
        created = await session.message(handle, {"request": "create", "room": 4242})
        assert created["plugindata"]["data"]["error_code"] == 429, created
        await session.destroy()


async def test_a_kick_drops_the_person_from_the_videoroom_and_their_token(
    sfu_client: httpx.AsyncClient, janus: Janus
) -> None:
    room, (alice, bob) = await _room(sfu_client, "alice", "bob")
    grant = (await _grant(sfu_client, room, bob)).json()
    async with httpx.AsyncClient(timeout=10) as http:
        session, _ = await _join(http, grant)
        assert await _participants(janus, http, grant["room"]) == [grant["publisher_id"]]
        kicked = await sfu_client.post(
            f"/rooms/{room['id']}/members/{bob['id']}/kick", headers=auth(alice["access_token"])
        )
        assert kicked.status_code == 200, kicked.text

        async def gone() -> bool:
            return await _participants(janus, http, grant["room"]) == []

        await _until(gone)
        with pytest.raises(JanusError) as refused:
            await session.keepalive()
        assert refused.value.code == UNAUTHORIZED
        with pytest.raises(JanusError):
            await JanusSession(http, janus.api_url, token=grant["token"]).create()


async def test_banned_people_and_strangers_to_a_private_room_get_no_grant(
    sfu_client: httpx.AsyncClient,
) -> None:
    room, (alice, bob) = await _room(sfu_client, "alice", "bob", is_private=True)
    stranger = await create_guest(sfu_client, "stranger")
    assert (await _grant(sfu_client, room, stranger)).status_code == 404  # cannot see it
    banned = await sfu_client.post(
        f"/rooms/{room['id']}/members/{bob['id']}/ban", headers=auth(alice["access_token"])
    )
    assert banned.status_code == 200, banned.text
    refused = await _grant(sfu_client, room, bob)
    assert refused.status_code in (403, 404), refused.text
    assert refused.json()["detail"]
    unauthenticated = await sfu_client.post(f"/rooms/{room['id']}/call/sfu-grant")
    assert unauthenticated.status_code == 401


async def test_without_janus_configured_there_is_no_grant(client: httpx.AsyncClient) -> None:
    room, (alice,) = await _room(client, "alice")
    response = await _grant(client, room, alice)
    assert response.status_code == 404
    assert "SFU" in response.json()["detail"]


async def test_an_unreachable_janus_is_a_503_not_a_500(
    make_settings: Callable[..., Settings],
) -> None:
    dead = "http://127.0.0.1:9/janus"
    settings = make_settings(
        sfu={
            "janus_url": dead,
            "admin_url": "http://127.0.0.1:9/admin",
            "admin_secret": "x",
            "room_admin_key": "y",
            "threshold": 0,
            "timeout_seconds": 0.5,
            "retries": 1,
        }
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        room, (alice,) = await _room(client, "alice")
        response = await _grant(client, room, alice)
        assert response.status_code == 503, response.text
        assert "unavailable" in response.json()["detail"]


async def test_expired_grants_are_withdrawn_and_empty_videorooms_destroyed(
    sfu_server: LiveServer, sfu_client: httpx.AsyncClient, janus: Janus
) -> None:
    room, (alice,) = await _room(sfu_client, "alice")
    grant = (await _grant(sfu_client, room, alice)).json()
    context = sfu_server.context
    assert context.sfu is not None
    async with httpx.AsyncClient(timeout=10) as http:
        admin = _admin(janus, http)
        exists = {"request": "exists", "room": grant["room"]}
        assert (await admin.videoroom(exists))["exists"] is True
        session, _ = await _join(http, grant)
        long_ago = utcnow() - timedelta(hours=1)
        async with unit_of_work(context.sessionmaker) as db:
            await db.execute(update(SfuGrant).values(expires_at=long_ago))
            await db.execute(update(SfuRoom).values(created_at=long_ago))
        swept = await context.sfu.sweep()
        assert swept == {
            "expired": 1,
            "orphans": 0,
            "destroyed": 1,
            "recordings_stopped": 0,
            "feed_checks_failed": 0,
            "orphan_folders": 0,
        }
        assert (await admin.videoroom(exists))["exists"] is False
        assert grant["token"] not in await admin.tokens()
        with pytest.raises(JanusError):
            await session.keepalive()


async def test_two_rooms_land_on_two_janus_instances(
    janus: Janus, second_janus: Janus, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(sfu=sfu_settings(janus, second_janus))
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        first, (alice,) = await _room(client, "alice")
        second, (bob,) = await _room(client, "bob")
        grants = [
            (await _grant(client, first, alice)).json(),
            (await _grant(client, second, bob)).json(),
        ]
        assert {grant["janus_url"] for grant in grants} == {janus.api_url, second_janus.api_url}
        # Everyone in a room goes to its instance.
        carol = await create_guest(client, "carol")
        await client.post(
            f"/rooms/{first['id']}/join", json={}, headers=auth(carol["access_token"])
        )
        assert (await _grant(client, first, carol)).json()["janus_url"] == grants[0]["janus_url"]
        async with httpx.AsyncClient(timeout=10) as http:
            for grant in grants:
                _, joined = await _join(http, grant)
                assert joined["videoroom"] == "joined", joined


def _bind(
    client: httpx.AsyncClient, room: dict[str, Any], person: dict[str, Any]
) -> Callable[[int, int], Awaitable[None]]:
    return partial(bind_handle, client, room["id"], person["access_token"])


async def _feeds(
    client: httpx.AsyncClient, room: dict[str, Any], person: dict[str, Any]
) -> dict[int, str]:
    answer = await client.get(
        f"/rooms/{room['id']}/call/sfu-feeds", headers=auth(person["access_token"])
    )
    assert answer.status_code == 200, answer.text
    return {item["feed"]: item["user_id"] for item in answer.json()["feeds"]}


async def test_a_feed_is_a_persons_only_from_their_own_handle_and_impostors_are_kicked(
    sfu_server: LiveServer, sfu_client: httpx.AsyncClient, janus: Janus
) -> None:
    room, (alice, bob, mallory) = await _room(sfu_client, "alice", "bob", "mallory")
    grants = {p["id"]: (await _grant(sfu_client, room, p)).json() for p in (alice, mallory)}
    janus_room = grants[alice["id"]]["room"]
    async with httpx.AsyncClient(timeout=10) as http:
        alices, joined = await _join(
            http, grants[alice["id"]], _bind(sfu_client, room, alice), display=alice["id"]
        )
        assert joined["videoroom"] == "joined", joined
        # Mallory's grant admits her: Janus takes any id and display she sends.
        forged, joined = await _join(http, grants[mallory["id"]], id=7, display=alice["id"])
        assert joined["videoroom"] == "joined", joined
        assert sorted(await _participants(janus, http, janus_room)) == sorted(
            [7, grants[alice["id"]]["publisher_id"]]
        )
        # videochat says whose each feed is: alice's, and nobody's 7 (kicked).
        assert await _feeds(sfu_client, room, bob) == {
            grants[alice["id"]]["publisher_id"]: alice["id"]
        }
        assert await _participants(janus, http, janus_room) == [grants[alice["id"]]["publisher_id"]]
        # Alice leaves (a reload); Mallory takes her publisher id, from a handle she bound
        # to her own grant: it is still not Alice's feed, and it is kicked.
        await alices.destroy()
        await forged.destroy()

        async def alice_gone() -> bool:
            return await _participants(janus, http, janus_room) == []

        await _until(alice_gone)
        taken, joined = await _join(
            http,
            grants[mallory["id"]],
            _bind(sfu_client, room, mallory),
            id=grants[alice["id"]]["publisher_id"],
            display=alice["id"],
        )
        assert joined["videoroom"] == "joined", joined
        assert await _feeds(sfu_client, room, bob) == {}
        assert await _participants(janus, http, janus_room) == []
        # The sweep does the same without anyone asking.
        await taken.destroy()
        again, joined = await _join(http, grants[mallory["id"]], id=8, display=alice["id"])
        assert joined["videoroom"] == "joined", joined
        context = sfu_server.context
        assert context.sfu is not None
        assert (await context.sfu.sweep())["feed_checks_failed"] == 0
        assert await _participants(janus, http, janus_room) == []
        await again.destroy()


async def test_only_a_handle_attached_with_the_callers_grant_token_can_be_bound(
    sfu_client: httpx.AsyncClient, janus: Janus
) -> None:
    room, (alice, mallory, carol) = await _room(sfu_client, "alice", "mallory", "carol")
    grant = (await _grant(sfu_client, room, alice)).json()
    await _grant(sfu_client, room, mallory)
    path = f"/rooms/{room['id']}/call/sfu-handle"
    async with httpx.AsyncClient(timeout=10) as http:
        session = JanusSession(http, grant["janus_url"], token=grant["token"])
        await session.create()
        handle = await session.attach()
        body = {"session_id": session.id, "handle_id": handle}
        # Alice's handle is not Mallory's; made-up ids are nobody's.
        for who, sent in ((mallory, body), (alice, {**body, "handle_id": handle + 1})):
            refused = await sfu_client.post(path, json=sent, headers=auth(who["access_token"]))
            assert refused.status_code == 403, refused.text
            assert "not yours" in refused.json()["detail"]
        # Without a grant, there is nothing to bind; bad bodies are 422.
        no_grant = await sfu_client.post(path, json=body, headers=auth(carol["access_token"]))
        assert no_grant.status_code == 409 and "grant" in no_grant.json()["detail"]
        bad = await sfu_client.post(
            path, json={"session_id": -1}, headers=auth(alice["access_token"])
        )
        assert bad.status_code == 422
        assert (await sfu_client.post(path, json=body)).status_code == 401
        bound = await sfu_client.post(path, json=body, headers=auth(alice["access_token"]))
        assert bound.status_code == 204, bound.text
        await session.destroy()


async def test_who_may_ask_for_a_grant_and_the_feeds(
    sfu_client: httpx.AsyncClient, janus: Janus
) -> None:
    """Members only (muted ones too), never the banned; the same for the feeds."""
    room, (alice, bob, carol) = await _room(sfu_client, "alice", "bob", "carol")
    visitor = await create_guest(sfu_client, "visitor")  # a public room: sees it, no member
    headers = auth(alice["access_token"])
    muted = await sfu_client.post(f"/rooms/{room['id']}/members/{bob['id']}/mute", headers=headers)
    assert muted.status_code == 200, muted.text
    banned = await sfu_client.post(
        f"/rooms/{room['id']}/members/{carol['id']}/ban", headers=headers
    )
    assert banned.status_code == 200, banned.text
    feeds = f"/rooms/{room['id']}/call/sfu-feeds"
    bind = f"/rooms/{room['id']}/call/sfu-handle"
    made_up = {"session_id": 1, "handle_id": 1}
    for person, status in ((alice, 200), (bob, 200), (visitor, 403), (carol, 403)):
        granted = await _grant(sfu_client, room, person)
        assert granted.status_code == status, (person["username"], granted.text)
        listed = await sfu_client.get(feeds, headers=auth(person["access_token"]))
        assert listed.status_code == status, (person["username"], listed.text)
        bound = await sfu_client.post(bind, json=made_up, headers=auth(person["access_token"]))
        # Members get as far as Janus (no such handle: not theirs); the others not.
        assert bound.status_code == 403, (person["username"], bound.text)
        if status != 200:
            assert granted.json()["detail"] and listed.json()["detail"]
            assert "member" in bound.json()["detail"] or "banned" in bound.json()["detail"]
    assert (await sfu_client.get(feeds)).status_code == 401
    assert (await sfu_client.post(bind, json=made_up)).status_code == 401


async def test_someone_waiting_in_a_private_rooms_lobby_gets_no_grant(
    sfu_client: httpx.AsyncClient, janus: Janus
) -> None:
    room, (alice,) = await _room(sfu_client, "alice", is_private=True)
    knocker = await create_guest(sfu_client, "knocker")
    knocked = await sfu_client.post(
        f"/rooms/{room['id']}/lobby", headers=auth(knocker["access_token"])
    )
    assert knocked.status_code == 201, knocked.text
    assert (await _grant(sfu_client, room, knocker)).status_code == 404
    admitted = await sfu_client.post(
        f"/rooms/{room['id']}/lobby/{knocker['id']}/admit", headers=auth(alice["access_token"])
    )
    assert admitted.status_code == 200, admitted.text
    assert (await _grant(sfu_client, room, knocker)).status_code == 200
