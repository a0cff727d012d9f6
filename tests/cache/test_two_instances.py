"""Two server processes sharing PostgreSQL and Redis: a write on one is seen on the other.

Instance B reads a room until it is answered from the cache (its hit counter moves),
then instance A changes the room; B's very next read shows the change.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import auth


async def _room_hits(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics/prometheus")).text
    for line in text.splitlines():
        if line.startswith('videochat_cache_hits_total{namespace="room"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _cached_read(http: httpx.AsyncClient, room_id: str, person: dict[str, Any]) -> Any:
    """Read the room on this instance until the answer came from the cache."""
    before = await _room_hits(http)
    await http.get(f"/rooms/{room_id}", headers=auth(person["access_token"]))
    response = await http.get(f"/rooms/{room_id}", headers=auth(person["access_token"]))
    assert await _room_hits(http) > before, "the second read was not a cache hit"
    return response.json()


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_write_on_one_instance_is_seen_at_once_on_the_other(
    two_instances: tuple[str, str],
) -> None:
    a_url, b_url = two_instances
    async with (
        httpx.AsyncClient(base_url=a_url, timeout=15) as a,
        httpx.AsyncClient(base_url=b_url, timeout=15) as b,
    ):
        owner = (await a.post("/users", json={"username": "owner"})).json()
        bob = (await b.post("/users", json={"username": "bob"})).json()
        room = (
            await a.post(
                "/rooms",
                json={"name": "Shared", "is_private": True},
                headers=auth(owner["access_token"]),
            )
        ).json()
        rid = room["id"]

        assert (await _cached_read(b, rid, owner))["users"] == [owner["id"]]
        joined = await a.post(
            f"/rooms/{rid}/join",
            json={"invite_code": room["invite_code"]},
            headers=auth(bob["access_token"]),
        )
        assert joined.status_code == 200
        assert (await b.get(f"/rooms/{rid}", headers=auth(owner["access_token"]))).json()[
            "users"
        ] == [owner["id"], bob["id"]]

        assert (await _cached_read(b, rid, owner))["roles"][bob["id"]] == "member"
        promoted = await a.post(
            f"/rooms/{rid}/members/{bob['id']}/role",
            json={"role": "moderator"},
            headers=auth(owner["access_token"]),
        )
        assert promoted.status_code == 200
        seen = (await b.get(f"/rooms/{rid}", headers=auth(owner["access_token"]))).json()
        assert seen["roles"][bob["id"]] == "moderator"

        # The other way round: B kicks, A (which has the room cached) sees it at once.
        await _cached_read(a, rid, bob)
        await b.post(
            f"/rooms/{rid}/members/{bob['id']}/role",
            json={"role": "member"},
            headers=auth(owner["access_token"]),
        )
        kicked = await b.post(
            f"/rooms/{rid}/members/{bob['id']}/kick", headers=auth(owner["access_token"])
        )
        assert kicked.status_code == 200
        assert (await a.get(f"/rooms/{rid}", headers=auth(bob["access_token"]))).status_code == 404
        after = (await a.get(f"/rooms/{rid}", headers=auth(owner["access_token"]))).json()
        assert after["users"] == [owner["id"]]

        # User profiles too.
        assert (await b.get(f"/users/{bob['id']}")).json()["username"] == "bob"
        assert (await a.get(f"/users/{bob['id']}")).json()["username"] == "bob"
