"""Guest accounts: ``POST /users`` and ``GET /users``."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import auth, create_guest


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


async def test_list_users_pages(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await create_guest(client, f"user{index}")
    first = (await client.get("/users", params={"limit": 3})).json()
    rest = (await client.get("/users", params={"limit": 3, "offset": 3})).json()
    assert [u["username"] for u in first + rest] == [f"user{i}" for i in range(5)]
    assert "access_token" not in first[0]
    assert (await client.get("/users", params={"limit": 0})).status_code == 422
    assert (await client.get("/users", params={"limit": 101})).status_code == 422


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
    listed = (await client.get("/users", params={"limit": 100})).json()
    assert {u["id"] for u in listed} >= ids


async def test_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}
