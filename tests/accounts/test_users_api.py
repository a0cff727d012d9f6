"""Guest accounts: ``POST /users`` and ``GET /users``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.support import auth, create_guest, create_room, run_server


async def test_create_guest_returns_user_and_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/users", json={"username": "alice_1"})
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "alice_1"
    assert body["id"] and body["joined_at"].endswith("Z")
    me = await client.get("/auth/me", headers=auth(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == body["id"]


@pytest.mark.parametrize(
    ("username", "reason"),
    [
        ("a", "too short"),
        ("x" * 51, "too long"),
        ("bad name", "space"),
        ("<script>", "angle brackets"),
        ("émile", "non-ASCII letter"),
        ("", "empty"),
    ],
)
async def test_invalid_usernames_are_422(
    client: httpx.AsyncClient, username: str, reason: str
) -> None:
    response = await client.post("/users", json={"username": username})
    assert response.status_code == 422, reason
    assert response.json()["detail"][0]["loc"] == ["body", "username"]


async def test_missing_username_and_bad_json_are_422(client: httpx.AsyncClient) -> None:
    assert (await client.post("/users", json={})).status_code == 422
    response = await client.post(
        "/users", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_boundary_lengths_are_accepted(client: httpx.AsyncClient) -> None:
    assert (await client.post("/users", json={"username": "ab"})).status_code == 200
    assert (await client.post("/users", json={"username": "y" * 50})).status_code == 200


async def test_list_users_needs_a_token_and_shows_only_room_mates(
    client: httpx.AsyncClient,
) -> None:
    anonymous = await client.get("/users")
    assert anonymous.status_code == 401
    guests = [await create_guest(client, f"user{index}") for index in range(5)]
    stranger = await create_guest(client, "stranger")
    owner = guests[0]
    room = await create_room(client, owner["access_token"])
    for guest in guests[1:]:
        joined = await client.post(
            f"/rooms/{room['id']}/join", json={}, headers=auth(guest["access_token"])
        )
        assert joined.status_code == 200
    headers = auth(owner["access_token"])
    first = (await client.get("/users", params={"limit": 3}, headers=headers)).json()
    rest = (await client.get("/users", params={"limit": 3, "offset": 3}, headers=headers)).json()
    assert [u["username"] for u in first + rest] == [f"user{i}" for i in range(5)]
    assert "access_token" not in first[0]
    alone = (await client.get("/users", headers=auth(stranger["access_token"]))).json()
    assert [u["username"] for u in alone] == ["stranger"]  # only themself
    assert (await client.get("/users", params={"limit": 0}, headers=headers)).status_code == 422
    assert (await client.get("/users", params={"limit": 101}, headers=headers)).status_code == 422


async def test_open_mode_lists_every_user(make_settings: Any) -> None:
    """The prototype's behaviour: anyone lists everyone."""
    async with (
        run_server(make_settings(auth_mode="open")) as live,
        httpx.AsyncClient(base_url=live.url) as http,
    ):
        for index in range(3):
            await create_guest(http, f"open{index}")
        listed = (await http.get("/users")).json()
        assert [u["username"] for u in listed] == ["open0", "open1", "open2"]


async def test_guest_cannot_take_a_registered_name(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        "/auth/register", json={"username": "Carol", "password": "long-password-1"}
    )
    assert registered.status_code == 201
    response = await client.post("/users", json={"username": "carol"})
    assert response.status_code == 409
    assert "registered" in response.json()["detail"]


async def test_fifty_guests_created_concurrently(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(client.post("/users", json={"username": f"burst{i}"}) for i in range(50))
    )
    assert [r.status_code for r in responses] == [200] * 50
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 50
    assert len({r.json()["access_token"] for r in responses}) == 50


async def test_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}
