"""Bans, kicks and mutes reach every door: uploads, tus, live streams, WHIP and frames,
including what was made before them (issue 13)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import update

from tests.live.helpers import force_status, new_stream, offer_sdp, whip_post
from tests.media.api_helpers import create_slot, new_slot, put
from tests.support import (
    LiveServer,
    auth,
    connect_ws,
    create_guest,
    receive_until,
    ws_path,
)
from videochat.db.models import LiveStreamStatus, Video, VideoStatus
from videochat.security.tokens import issue_token

# Enough of an MP4 for the upload's sniff: an ftyp box (the bytes are never processed).
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 4096


async def _public_room(
    client: httpx.AsyncClient, *names: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    people = [await create_guest(client, name) for name in names]
    room = (
        await client.post("/rooms", json={"name": "Open"}, headers=auth(people[0]["access_token"]))
    ).json()
    for person in people[1:]:
        joined = await client.post(
            f"/rooms/{room['id']}/join", headers=auth(person["access_token"])
        )
        assert joined.status_code == 200, joined.text
    return room, people


async def _act(
    client: httpx.AsyncClient,
    actor: dict[str, Any],
    room: dict[str, Any],
    target_id: str,
    what: str,
) -> httpx.Response:
    return await client.post(
        f"/rooms/{room['id']}/members/{target_id}/{what}", headers=auth(actor["access_token"])
    )


def _tus_headers(token: str, room_id: str) -> dict[str, str]:
    meta = {"room_id": room_id, "title": "Sneaky"}
    encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())
    return {
        **auth(token),
        "Tus-Resumable": "1.0.0",
        "Upload-Length": str(len(MP4_HEAD)),
        "Upload-Metadata": encoded,
    }


async def _video_status(server: LiveServer, video_id: str) -> tuple[VideoStatus, str | None]:
    async with server.context.sessionmaker() as session:
        video = await session.get(Video, video_id)
        assert video is not None
        return video.status, video.error


async def test_a_ban_closes_every_door_and_what_was_made_before(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (owner, member) = await _public_room(client, "owner", "member")
    token = member["access_token"]
    slot = await new_slot(client, token, room["id"])
    processing = await new_slot(client, token, room["id"])
    async with server.context.sessionmaker() as session:
        await session.execute(
            update(Video).where(Video.id == processing["id"]).values(status=VideoStatus.PROCESSING)
        )
        await session.commit()
    stream = await new_stream(client, token, room["id"])

    async with connect_ws(server, ws_path(room["id"], owner["id"], owner["access_token"])) as o:
        await receive_until(o, "presence")
        assert (await _act(client, owner, room, member["id"], "ban")).status_code == 200
        assert (await receive_until(o, "moderation"))["action"] == "ban"
        ended = await receive_until(o, "live_ended")
        assert ended["stream_id"] == stream["id"] and ended["reason"] == "banned"

        refused = await create_slot(client, token, room["id"])
        assert refused.status_code == 403 and "banned" in refused.json()["detail"]
        tus = await client.post("/uploads/tus", headers=_tus_headers(token, room["id"]))
        assert tus.status_code == 403 and "banned" in tus.json()["detail"]
        old_slot = await put(client, slot["upload_url"], MP4_HEAD, token)
        assert old_slot.status_code == 403, old_slot.text
        patch = await client.patch(
            f"/uploads/tus/{slot['upload_id']}",
            content=MP4_HEAD,
            headers={
                **auth(token),
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patch.status_code == 403, patch.text
        live = await client.post(
            f"/rooms/{room['id']}/live-stream", json={"title": "Again"}, headers=auth(token)
        )
        assert live.status_code == 403 and "banned" in live.json()["detail"]
        whip = await whip_post(
            client, stream["whip_url"], stream["stream_key"], offer_sdp("video:VP8")
        )
        assert whip.status_code in (403, 410), whip.text

        # Nothing of theirs was announced to the room after the ban.
        await o.send(json.dumps({"type": "ping", "time": 1}))
        while (frame := json.loads(await o.recv()))["type"] != "pong":
            assert frame["type"] != "video_status", frame

    for made in (slot, processing):
        status, error = await _video_status(server, made["id"])
        assert status is VideoStatus.FAILED and error and "banned" in error
    listed = (await client.get(f"/rooms/{room['id']}/videos")).json()
    assert all(v["status"] != "ready" for v in listed)
    shown = (await client.get(f"/live-streams/{stream['id']}")).json()
    assert shown["status"] == "ended" and shown["video_id"] is None


async def test_whip_refuses_a_stream_whose_owner_is_banned_or_muted(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (owner, member) = await _public_room(client, "owner", "member")
    stream = await new_stream(client, member["access_token"], room["id"])
    # The ban is written behind the app's back: WHIP itself must ask the policy.
    from videochat.db.models import RoomBan
    from videochat.rooms import repository as rooms_repository

    async with server.context.sessionmaker() as session:
        session.add(RoomBan(room_id=room["id"], user_id=member["id"], banned_by=owner["id"]))
        await session.commit()
        await rooms_repository.forget_room(session, room["id"])
    whip = await whip_post(client, stream["whip_url"], stream["stream_key"], offer_sdp("video:VP8"))
    assert whip.status_code == 403 and "banned" in whip.json()["detail"]


async def test_a_mute_covers_uploads_live_typing_and_sending_media(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (owner, member) = await _public_room(client, "owner", "member")
    token = member["access_token"]
    slot = await new_slot(client, token, room["id"])
    stream = await new_stream(client, token, room["id"])
    await force_status(server, stream["id"], LiveStreamStatus.LIVE)
    async with (
        connect_ws(server, ws_path(room["id"], owner["id"], owner["access_token"])) as o,
        connect_ws(server, ws_path(room["id"], member["id"], token)) as m,
    ):
        await receive_until(m, "presence")
        assert (await _act(client, owner, room, member["id"], "mute")).status_code == 200
        assert (await receive_until(m, "moderation"))["action"] == "mute"
        ended = await receive_until(o, "live_ended")
        assert ended["stream_id"] == stream["id"] and ended["reason"] == "muted"

        refused = await create_slot(client, token, room["id"])
        assert refused.status_code == 403 and "muted" in refused.json()["detail"]
        tus = await client.post("/uploads/tus", headers=_tus_headers(token, room["id"]))
        assert tus.status_code == 403
        assert (await put(client, slot["upload_url"], MP4_HEAD, token)).status_code == 403
        live = await client.post(
            f"/rooms/{room['id']}/live-stream", json={"title": "Again"}, headers=auth(token)
        )
        assert live.status_code == 403 and "muted" in live.json()["detail"]

        await m.send(json.dumps({"type": "typing", "typing": True}))
        assert (await receive_until(m, "error"))["code"] == "muted"

        # Signalling to receive others' media still works; what would send is made recv-only.
        offer = offer_sdp("audio:opus", "video:VP8").replace("a=sendonly", "a=sendrecv")
        await m.send(
            json.dumps(
                {
                    "type": "signal",
                    "to": owner["id"],
                    "data": {"description": {"type": "offer", "sdp": offer}},
                }
            )
        )
        relayed = await receive_until(o, "signal")
        sdp = relayed["data"]["description"]["sdp"]
        assert "a=sendrecv" not in sdp and "a=sendonly" not in sdp
        assert sdp.count("a=recvonly") == 2
        candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
        await m.send(
            json.dumps({"type": "signal", "to": owner["id"], "data": {"candidates": [candidate]}})
        )
        assert (await receive_until(o, "signal"))["data"] == {"candidates": [candidate]}

        # Nobody else saw the typing frame.
        await o.send(json.dumps({"type": "ping", "time": 1}))
        while (frame := json.loads(await o.recv()))["type"] != "pong":
            assert frame["type"] != "typing", frame


async def test_a_muted_member_may_still_answer_to_watch(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (owner, member) = await _public_room(client, "owner", "member")
    await _act(client, owner, room, member["id"], "mute")
    async with (
        connect_ws(server, ws_path(room["id"], owner["id"], owner["access_token"])) as o,
        connect_ws(server, ws_path(room["id"], member["id"], member["access_token"])) as m,
    ):
        await receive_until(m, "presence")
        answer = offer_sdp("video:VP8").replace("a=sendonly", "a=recvonly")
        await m.send(
            json.dumps(
                {
                    "type": "signal",
                    "to": owner["id"],
                    "data": {"description": {"type": "answer", "sdp": answer}},
                }
            )
        )
        relayed = await receive_until(o, "signal")
        assert relayed["data"]["description"] == {"type": "answer", "sdp": answer}


async def test_invite_code_rotate_and_revoke(client: httpx.AsyncClient) -> None:
    owner, member, newcomer = [await create_guest(client, n) for n in ("owner", "member", "new")]
    room = (
        await client.post(
            "/rooms",
            json={"name": "Closed", "is_private": True},
            headers=auth(owner["access_token"]),
        )
    ).json()
    old = room["invite_code"]
    url = f"/rooms/{room['id']}/invite-code"
    joined = await client.post(
        f"/rooms/{room['id']}/join", json={"invite_code": old}, headers=auth(member["access_token"])
    )
    assert joined.status_code == 200
    assert (await client.post(url, headers=auth(member["access_token"]))).status_code == 403
    assert (await client.post(url)).status_code == 401
    rotated = await client.post(url, headers=auth(owner["access_token"]))
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["invite_code"]
    assert new and new != old
    assert (await client.get(f"/rooms/{room['id']}", headers=auth(owner["access_token"]))).json()[
        "invite_code"
    ] == new
    stale = await client.post(
        f"/rooms/{room['id']}/join",
        json={"invite_code": old},
        headers=auth(newcomer["access_token"]),
    )
    assert stale.status_code == 403
    revoked = await client.delete(url, headers=auth(owner["access_token"]))
    assert revoked.status_code == 200 and revoked.json()["invite_code"] is None
    gone = await client.post(
        f"/rooms/{room['id']}/join",
        json={"invite_code": new},
        headers=auth(newcomer["access_token"]),
    )
    assert gone.status_code == 403
    public = (
        await client.post("/rooms", json={"name": "Open"}, headers=auth(owner["access_token"]))
    ).json()
    no_code = await client.post(
        f"/rooms/{public['id']}/invite-code", headers=auth(owner["access_token"])
    )
    assert no_code.status_code == 400


async def test_a_kicked_member_does_not_walk_back_in_with_an_old_code(
    client: httpx.AsyncClient,
) -> None:
    owner, mod, other = [await create_guest(client, n) for n in ("owner", "mod", "other")]
    room = (
        await client.post(
            "/rooms",
            json={"name": "Closed", "is_private": True},
            headers=auth(owner["access_token"]),
        )
    ).json()
    rid, code = room["id"], room["invite_code"]
    invite = (
        await client.post(f"/rooms/{rid}/invites", json={}, headers=auth(owner["access_token"]))
    ).json()["code"]
    for person in (mod, other):
        joined = await client.post(
            f"/rooms/{rid}/join", json={"invite_code": code}, headers=auth(person["access_token"])
        )
        assert joined.status_code == 200
    await client.post(
        f"/rooms/{rid}/members/{mod['id']}/role",
        json={"role": "moderator"},
        headers=auth(owner["access_token"]),
    )
    # The demoted moderator saw the permanent code; demoted and kicked, it no longer works.
    seen = (await client.get(f"/rooms/{rid}", headers=auth(mod["access_token"]))).json()
    assert seen["invite_code"] == code
    await client.post(
        f"/rooms/{rid}/members/{mod['id']}/role",
        json={"role": "member"},
        headers=auth(owner["access_token"]),
    )
    assert (await _act(client, owner, room, mod["id"], "kick")).status_code == 200
    for old in (code, invite):
        back = await client.post(
            f"/rooms/{rid}/join", json={"invite_code": old}, headers=auth(mod["access_token"])
        )
        assert back.status_code == 403, old
    # A code made after the kick is a new invitation.
    fresh = (
        await client.post(f"/rooms/{rid}/invites", json={}, headers=auth(owner["access_token"]))
    ).json()["code"]
    again = await client.post(
        f"/rooms/{rid}/join", json={"invite_code": fresh}, headers=auth(mod["access_token"])
    )
    assert again.status_code == 200


async def test_moderators_do_not_undo_or_delete_what_outranks_them(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (owner, mod, mod2, member, x, y) = await _public_room(
        client, "owner", "mod", "mod2", "member", "xx", "yy"
    )
    for person in (mod, mod2):
        await client.post(
            f"/rooms/{room['id']}/members/{person['id']}/role",
            json={"role": "moderator"},
            headers=auth(owner["access_token"]),
        )
    assert (await _act(client, owner, room, x["id"], "ban")).status_code == 200
    lift = await client.delete(
        f"/rooms/{room['id']}/bans/{x['id']}", headers=auth(mod["access_token"])
    )
    assert lift.status_code == 403
    assert (await _act(client, owner, room, y["id"], "mute")).status_code == 200
    assert (await _act(client, mod, room, y["id"], "unmute")).status_code == 403
    assert (await _act(client, owner, room, y["id"], "unmute")).status_code == 200
    assert (await _act(client, mod, room, y["id"], "mute")).status_code == 200
    assert (await _act(client, mod2, room, y["id"], "unmute")).status_code == 200
    lifted = await client.delete(
        f"/rooms/{room['id']}/bans/{x['id']}", headers=auth(owner["access_token"])
    )
    assert lifted.status_code == 200

    async with (
        connect_ws(server, ws_path(room["id"], owner["id"], owner["access_token"])) as o,
        connect_ws(server, ws_path(room["id"], mod["id"], mod["access_token"])) as md,
        connect_ws(server, ws_path(room["id"], mod2["id"], mod2["access_token"])) as m2,
        connect_ws(server, ws_path(room["id"], member["id"], member["access_token"])) as mb,
    ):
        sockets = {"owner": o, "mod2": m2, "member": mb}
        ids = {}
        for name, socket in sockets.items():
            await socket.send(json.dumps({"content": f"from {name}"}))
            while (frame := await receive_until(socket, "message"))["content"] != f"from {name}":
                pass
            ids[name] = frame["id"]
        for name, allowed in (("owner", False), ("mod2", False), ("member", True)):
            await md.send(json.dumps({"type": "delete", "id": ids[name]}))
            if allowed:
                assert (await receive_until(md, "message_deleted"))["id"] == ids[name]
            else:
                assert (await receive_until(md, "error"))["code"] == "forbidden", name
        await o.send(json.dumps({"type": "delete", "id": ids["mod2"]}))
        while (await receive_until(o, "message_deleted"))["id"] != ids["mod2"]:
            pass  # the member's message, deleted above, comes first


async def test_a_socket_closes_when_its_token_expires_and_a_fresh_one_reconnects(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    registered = await client.post(
        "/auth/register", json={"username": "erin", "password": "a long enough password"}
    )
    assert registered.status_code == 201, registered.text
    account = registered.json()
    user_id = account["user"]["id"]
    room = (
        await client.post("/rooms", json={"name": "Open"}, headers=auth(account["access_token"]))
    ).json()
    short, _ = issue_token(server.settings.jwt, subject=user_id, kind="access", ttl_seconds=2)
    async with connect_ws(server, ws_path(room["id"], user_id, short)) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    assert closed.value.rcvd.reason == "token expired"
    # What the web client does on 4001: refresh, then reconnect with the new token.
    fresh = await client.post("/auth/refresh", json={"refresh_token": account["refresh_token"]})
    assert fresh.status_code == 200
    token = fresh.json()["access_token"]
    async with connect_ws(server, ws_path(room["id"], user_id, token, since=0)) as again:
        assert (await receive_until(again, "welcome"))["user_id"] == user_id
