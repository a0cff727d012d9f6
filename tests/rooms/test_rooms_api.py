"""Rooms: create, list, get, join, private rooms and invites."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import auth, create_guest, create_room


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
