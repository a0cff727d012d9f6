"""Rooms: create, list, get, join, private rooms and invites."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from typing import Any

import httpx
import hypothesis
import pytest
from hypothesis import strategies as st

from tests.support import auth, create_guest, create_room, run_server
from videochat.rooms.schemas import RoomCursor


async def test_create_room_makes_creator_owner(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"], "  Team sync  ")
    assert room["name"] == "Team sync"
    assert room["owner_id"] == alice["id"]
    assert room["users"] == [alice["id"]]
    assert room["created_at"].endswith("Z")
    members = (await client.get(f"/rooms/{room['id']}/members")).json()
    assert [(m["user_id"], m["role"]) for m in members] == [(alice["id"], "owner")]


@pytest.mark.parametrize(
    "name", ["x", " y ", "z" * 101, "   ", "bell\x07room", "evil\u202eroom", "two\nlines"]
)
async def test_bad_room_names_are_422(client: httpx.AsyncClient, name: str) -> None:
    alice = await create_guest(client, "alice")
    response = await client.post("/rooms", json={"name": name}, headers=auth(alice["access_token"]))
    assert response.status_code == 422
    assert response.json()["detail"]


async def test_room_names_are_unicode_normalised(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    # "Café" typed with a combining accent is stored as the one-code-point form.
    room = await create_room(client, alice["access_token"], "Cafe\u0301 talk")
    assert room["name"] == "Caf\u00e9 talk"


async def test_create_room_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/rooms", json={"name": "General"})
    assert response.status_code == 401


async def test_get_and_list_rooms_without_a_token(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"], "Lobby")
    listed = (await client.get("/rooms")).json()
    assert [r["id"] for r in listed] == [room["id"]]
    fetched = await client.get(f"/rooms/{room['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["name"] == "Lobby"


async def test_unknown_room_is_404(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    assert (await client.get("/rooms/nope")).json() == {"detail": "Room not found"}
    join = await client.post("/rooms/nope/join", json={}, headers=auth(alice["access_token"]))
    assert join.status_code == 404
    assert join.json() == {"detail": "Room not found"}


async def test_join_with_token(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"], "Lobby")
    response = await client.post(
        f"/rooms/{room['id']}/join", json={"user_id": bob["id"]}, headers=auth(bob["access_token"])
    )
    assert response.status_code == 200
    assert response.json() == {"message": "User bob joined room Lobby"}
    without_body = await client.post(f"/rooms/{room['id']}/join", headers=auth(bob["access_token"]))
    assert without_body.status_code == 200
    users = (await client.get(f"/rooms/{room['id']}")).json()["users"]
    assert users == [alice["id"], bob["id"]]


async def test_join_for_someone_else_is_403(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"])
    response = await client.post(
        f"/rooms/{room['id']}/join",
        json={"user_id": alice["id"]},
        headers=auth(bob["access_token"]),
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "user_id does not match the authenticated user"


async def test_join_without_token_is_401(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    response = await client.post(f"/rooms/{room['id']}/join", json={"user_id": alice["id"]})
    assert response.status_code == 401


async def test_private_room_is_hidden_from_outsiders(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"], "Secret", private=True)
    assert room["is_private"] is True and room["invite_code"]
    for headers in ({}, auth(bob["access_token"])):
        assert (await client.get(f"/rooms/{room['id']}", headers=headers)).status_code == 404
        assert (
            await client.get(f"/rooms/{room['id']}/messages", headers=headers)
        ).status_code == 404
        assert room["id"] not in [
            r["id"] for r in (await client.get("/rooms", headers=headers)).json()
        ]
    owner_view = await client.get(f"/rooms/{room['id']}", headers=auth(alice["access_token"]))
    assert owner_view.status_code == 200


async def test_private_room_join_needs_the_invite(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"], "Secret", private=True)
    url = f"/rooms/{room['id']}/join"
    refused = await client.post(url, json={}, headers=auth(bob["access_token"]))
    assert refused.status_code == 403
    wrong = await client.post(url, json={"invite_code": "guess"}, headers=auth(bob["access_token"]))
    assert wrong.status_code == 403
    joined = await client.post(
        url, json={"invite_code": room["invite_code"]}, headers=auth(bob["access_token"])
    )
    assert joined.status_code == 200
    bob_view = (await client.get(f"/rooms/{room['id']}", headers=auth(bob["access_token"]))).json()
    assert bob_view["invite_code"] is None  # members see the room, not the invite
    assert bob["id"] in bob_view["users"]


async def test_twenty_rooms_in_a_burst(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    responses = await asyncio.gather(
        *(
            client.post("/rooms", json={"name": f"room {i}"}, headers=auth(alice["access_token"]))
            for i in range(20)
        )
    )
    assert [r.status_code for r in responses] == [200] * 20
    listed = (await client.get("/rooms")).json()
    assert sorted(r["name"] for r in listed) == sorted(f"room {i}" for i in range(20))


async def test_concurrent_joins_of_one_user_are_idempotent(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"])
    responses = await asyncio.gather(
        *(
            client.post(f"/rooms/{room['id']}/join", headers=auth(bob["access_token"]))
            for _ in range(5)
        )
    )
    assert [r.status_code for r in responses] == [200] * 5
    users = (await client.get(f"/rooms/{room['id']}")).json()["users"]
    assert users.count(bob["id"]) == 1


def _flat(pages: list[list[str]]) -> list[str]:
    return [room_id for page in pages for room_id in page]


async def _page_through(client: httpx.AsyncClient, url: str, **headers: str) -> list[list[str]]:
    """Follow ``Link: rel="next"`` from ``url``; the ids of every page, in order."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url is not None:
        response = await client.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), list)  # the compatible shape: a plain list
        pages.append([room["id"] for room in response.json()])
        next_link = response.links.get("next")
        next_url = next_link["url"] if next_link else None
        cursor = response.headers.get("X-Next-Cursor")
        assert (cursor is None) == (next_url is None)
        assert len(pages) <= 200, "the cursor never ends"
    return pages


async def test_rooms_page_newest_first_and_the_cursor_reaches_every_room_once(
    client: httpx.AsyncClient,
) -> None:
    alice = await create_guest(client, "alice")
    created = [
        (await create_room(client, alice["access_token"], f"room {i}"))["id"] for i in range(105)
    ]
    first = await client.get("/rooms")
    assert [room["id"] for room in first.json()] == created[::-1][:100]
    assert first.links["next"]["url"]
    pages = await _page_through(client, "/rooms")
    assert [len(page) for page in pages] == [100, 5]
    assert _flat(pages) == created[::-1]
    # Smaller pages, and a room created while paging: nothing repeated, nothing missed.
    first_small = await client.get("/rooms?limit=7")
    newer = await create_room(client, alice["access_token"], "while paging")
    rest = await _page_through(client, first_small.links["next"]["url"])
    seen = [room["id"] for room in first_small.json()] + _flat(rest)
    assert seen == created[::-1]
    assert newer["id"] not in seen
    assert (await client.get("/rooms?limit=1")).json()[0]["id"] == newer["id"]


async def test_rooms_cursor_keeps_private_rooms_for_their_members(
    client: httpx.AsyncClient,
) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    rooms = []
    for i in range(6):
        room = await create_room(client, alice["access_token"], f"room {i}", private=i % 2 == 0)
        rooms.append(room["id"])
    public = [room_id for i, room_id in enumerate(rooms) if i % 2]
    as_alice = _flat(await _page_through(client, "/rooms?limit=2", **auth(alice["access_token"])))
    as_bob = _flat(await _page_through(client, "/rooms?limit=2", **auth(bob["access_token"])))
    assert as_alice == rooms[::-1]
    assert as_bob == public[::-1]


async def test_rooms_offset_still_pages(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    created = [
        (await create_room(client, alice["access_token"], f"room {i}"))["id"] for i in range(5)
    ]
    page = await client.get("/rooms?limit=2&offset=2")
    assert [room["id"] for room in page.json()] == created[::-1][2:4]
    rest = _flat(await _page_through(client, page.links["next"]["url"]))
    assert rest == created[::-1][4:]


def _cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


@pytest.mark.parametrize(
    "query",
    [
        "cursor=nonsense",
        "cursor=%%%",
        "cursor=" + "A" * 1000,
        "cursor=bm90IGpzb24",  # base64 of "not json"
        "cursor=WzFd",  # base64 of "[1]"
        "cursor=WyJ5ZXN0ZXJkYXkiLCAiaWQiXQ",  # base64 of ["yesterday", "id"]
        "cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgImlkIl0",  # a naive time
        "cursor=" + _cursor("9999-12-31T23:59:59-14:00", "id"),  # past year 9999 in UTC
        "cursor=" + _cursor("2026-01-01T00:00:00Z", "a\x00b"),
        "cursor=" + _cursor("2026-01-01T00:00:00Z", "x" * 37),
        "limit=0",
        "limit=201",
        "offset=-1",
    ],
)
async def test_bad_room_paging_is_422_with_detail(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/rooms?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


async def test_cursor_and_offset_together_are_422(client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    for i in range(3):
        await create_room(client, alice["access_token"], f"room {i}")
    cursor = (await client.get("/rooms?limit=1")).headers["X-Next-Cursor"]
    response = await client.get("/rooms", params={"cursor": cursor, "offset": 1})
    assert response.status_code == 422
    assert "offset" in str(response.json()["detail"])


async def test_cross_origin_clients_can_read_the_next_page(make_settings: Any) -> None:
    settings = make_settings(cors_origins=["https://app.example"])
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        alice = await create_guest(http, "alice")
        for i in range(2):
            await create_room(http, alice["access_token"], f"room {i}")
        page = await http.get("/rooms?limit=1", headers={"Origin": "https://app.example"})
        exposed = page.headers["access-control-expose-headers"].lower().split(", ")
        assert {"link", "x-next-cursor"} <= set(exposed)
        assert page.headers["x-next-cursor"]


@hypothesis.settings(max_examples=300, deadline=None, database=None, derandomize=True)
@hypothesis.given(
    text=st.text(max_size=200)
    | st.tuples(st.text(max_size=40), st.text(max_size=40)).map(lambda pair: _cursor(*pair))
    | st.tuples(st.datetimes(timezones=st.timezones()), st.text(max_size=40)).map(
        lambda pair: _cursor(pair[0].isoformat(), pair[1])
    )
)
def test_any_cursor_text_is_a_cursor_or_a_value_error(text: str) -> None:
    """Whatever a client sends decodes to a cursor the database takes, or to a 422."""
    try:
        cursor = RoomCursor.decode(text)
    except ValueError:
        return
    assert cursor.created_at.utcoffset() == timedelta(0)
    assert cursor.id.isprintable() and cursor.id.isascii()
    assert RoomCursor.decode(cursor.encode()) == cursor
