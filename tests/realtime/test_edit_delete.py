"""Editing and deleting messages over the socket; both show in history."""

from __future__ import annotations

import json

import httpx

from tests.support import (
    LiveServer,
    auth,
    connect_ws,
    create_guest,
    create_room,
    receive_until,
    ws_path,
)


async def test_author_edits_and_deletes(client: httpx.AsyncClient, server: LiveServer) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"])
    await client.post(f"/rooms/{room['id']}/join", headers=auth(bob["access_token"]))
    async with (
        connect_ws(server, ws_path(room["id"], bob["id"], bob["access_token"])) as b,
        connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])) as a,
    ):
        await b.send(json.dumps({"content": "tpyo"}))
        message = await receive_until(a, "message")
        await b.send(json.dumps({"type": "edit", "id": message["id"], "content": "typo"}))
        edited = await receive_until(a, "message_edited")
        assert edited["id"] == message["id"] and edited["content"] == "typo"

        # Alice is the room's owner: she may delete Bob's message but not edit it.
        await a.send(json.dumps({"type": "edit", "id": message["id"], "content": "mine now"}))
        assert (await receive_until(a, "error"))["code"] == "forbidden"
        await a.send(json.dumps({"type": "delete", "id": message["id"]}))
        deleted = await receive_until(b, "message_deleted")
        assert deleted == {
            "type": "message_deleted",
            "id": message["id"],
            "deleted_by": alice["id"],
        }
        await b.send(json.dumps({"type": "edit", "id": message["id"], "content": "again"}))
        assert (await receive_until(b, "error"))["code"] == "not_found"
        await b.send(json.dumps({"type": "delete", "id": "x"}))
        assert (await receive_until(b, "error"))["code"] == "invalid"

    history = (await client.get(f"/rooms/{room['id']}/messages")).json()
    assert history[0]["id"] == message["id"]
    assert history[0]["deleted"] is True and history[0]["content"] == ""
    assert history[0]["edited_at"] is not None


async def test_member_cannot_delete_others_messages(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"])
    async with (
        connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])) as a,
        connect_ws(server, ws_path(room["id"], bob["id"], bob["access_token"])) as b,
    ):
        await a.send(json.dumps({"content": "owner's words"}))
        message = await receive_until(b, "message")
        await b.send(json.dumps({"type": "delete", "id": message["id"]}))
        assert (await receive_until(b, "error"))["code"] == "forbidden"
    history = (await client.get(f"/rooms/{room['id']}/messages")).json()
    assert history[0]["content"] == "owner's words" and history[0]["deleted"] is False


async def test_replay_carries_edits_and_deletions(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    path = ws_path(room["id"], alice["id"], alice["access_token"])
    async with connect_ws(server, path) as a:
        for text in ("keep", "fix me", "drop me"):
            await a.send(json.dumps({"content": text}))
        sent = [await receive_until(a, "message") for _ in range(3)]
        await a.send(json.dumps({"type": "edit", "id": sent[1]["id"], "content": "fixed"}))
        await receive_until(a, "message_edited")
        await a.send(json.dumps({"type": "delete", "id": sent[2]["id"]}))
        await receive_until(a, "message_deleted")
    async with connect_ws(server, path + "&since=0") as again:
        replayed = [await receive_until(again, "message") for _ in range(3)]
        welcome = await receive_until(again, "welcome")
    assert [(m["content"], m["deleted"]) for m in replayed] == [
        ("keep", False),
        ("fixed", False),
        ("", True),
    ]
    assert replayed[0]["edited_at"] is None and replayed[1]["edited_at"] is not None
    assert welcome["role"] == "owner" and welcome["muted"] is False
