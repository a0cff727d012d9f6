"""Emoji reactions over the socket: broadcast, in history and in replays, validated."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support import (
    LiveServer,
    auth,
    collect,
    connect_ws,
    create_guest,
    create_room,
    receive_until,
    ws_path,
)
from videochat.chat.reactions import MAX_KINDS_PER_MESSAGE, clean_emoji
from videochat.exceptions import BadRequest


async def test_reactions_are_broadcast_kept_in_history_and_replayed(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"])
    await client.post(f"/rooms/{room['id']}/join", headers=auth(bob["access_token"]))
    async with (
        connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])) as a,
        connect_ws(server, ws_path(room["id"], bob["id"], bob["access_token"])) as b,
    ):
        await a.send(json.dumps({"content": "lunch?"}))
        message = await receive_until(b, "message")
        assert message["reactions"] == []

        await b.send(json.dumps({"type": "reaction", "id": message["id"], "emoji": "👍"}))
        seen = await receive_until(a, "reaction")
        assert seen["id"] == message["id"] and seen["user_id"] == bob["id"]
        assert seen["added"] is True
        assert seen["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [bob["id"]]}]

        # The same reaction twice counts once; a second person adds to the count.
        await b.send(json.dumps({"type": "reaction", "id": message["id"], "emoji": "👍"}))
        assert (await receive_until(a, "reaction"))["reactions"][0]["count"] == 1
        await a.send(json.dumps({"type": "reaction", "id": message["id"], "emoji": "👍"}))
        await a.send(json.dumps({"type": "reaction", "id": message["id"], "emoji": "🎉"}))
        await a.send(
            json.dumps({"type": "reaction", "id": message["id"], "emoji": "🎉", "add": False})
        )
        # Bob sees his own two reactions, then Alice's three, in order.
        _, _, both, _, removed = await collect(b, "reaction", 5)
        assert both["reactions"][0] == {
            "emoji": "👍",
            "count": 2,
            "user_ids": [bob["id"], alice["id"]],
        }
        assert removed["added"] is False and removed["emoji"] == "🎉"
        assert [r["emoji"] for r in removed["reactions"]] == ["👍"]

    history = (await client.get(f"/rooms/{room['id']}/messages")).json()
    assert history[0]["reactions"] == [
        {"emoji": "👍", "count": 2, "user_ids": [bob["id"], alice["id"]]}
    ]
    # A reconnect's replay carries the reactions as they are now.
    async with connect_ws(
        server, ws_path(room["id"], bob["id"], bob["access_token"], since=0)
    ) as again:
        replayed = await receive_until(again, "message")
        assert replayed["id"] == message["id"]
        assert replayed["reactions"][0]["count"] == 2


async def test_bad_reactions_get_error_frames(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    async with connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])) as a:
        await a.send(json.dumps({"content": "hi"}))
        message = await receive_until(a, "message")
        cases = [
            ({"type": "reaction", "emoji": "👍"}, "invalid"),
            ({"type": "reaction", "id": message["id"], "emoji": "<b>x</b>"}, "invalid"),
            ({"type": "reaction", "id": message["id"], "emoji": "👍", "add": "yes"}, "invalid"),
            ({"type": "reaction", "id": message["id"] + 999, "emoji": "👍"}, "not_found"),
        ]
        for frame, code in cases:
            await a.send(json.dumps(frame))
            assert (await receive_until(a, "error"))["code"] == code, frame

        for n in range(MAX_KINDS_PER_MESSAGE + 1):
            emoji = chr(0x1F600 + n)
            await a.send(json.dumps({"type": "reaction", "id": message["id"], "emoji": emoji}))
        error = await receive_until(a, "error")
        assert "at most" in error["message"]

        await a.send(json.dumps({"type": "delete", "id": message["id"]}))
        await receive_until(a, "message_deleted")
        await a.send(json.dumps({"type": "reaction", "id": message["id"], "emoji": "👍"}))
        assert (await receive_until(a, "error"))["code"] == "not_found"


@pytest.mark.parametrize("emoji", ["👍", "❤️", "👩‍👩‍👧", "🇫🇷", "👍🏽"])
def test_emoji_sequences_are_accepted(emoji: str) -> None:
    assert clean_emoji(emoji) == emoji


@pytest.mark.parametrize("raw", ["", "a", "ok👍", "👍" * 11, "\u202e👍", 5, None])
def test_text_and_tricks_are_not_emoji(raw: object) -> None:
    with pytest.raises(BadRequest):
        clean_emoji(raw)
