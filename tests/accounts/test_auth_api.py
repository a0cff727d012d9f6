"""Registered accounts and tokens: register, login, refresh rotation, me."""

from __future__ import annotations

from datetime import timedelta

import httpx
import jwt
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import auth
from videochat.config import JWTSettings, Settings
from videochat.db.models import RefreshToken
from videochat.kit.clock import utcnow
from videochat.security.tokens import issue_token

PASSWORD = "correct horse battery"


async def _register(client: httpx.AsyncClient, name: str = "dana") -> dict[str, object]:
    response = await client.post("/auth/register", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def _refresh(client: httpx.AsyncClient, refresh_token: object) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": refresh_token})


async def test_register_login_me(client: httpx.AsyncClient) -> None:
    registered = await _register(client)
    assert registered["user"]["is_guest"] is False  # type: ignore[index]
    login = await client.post("/auth/login", json={"username": "DANA", "password": PASSWORD})
    assert login.status_code == 200
    me = await client.get("/auth/me", headers=auth(login.json()["access_token"]))
    assert me.json()["username"] == "dana"


async def test_register_twice_is_409(client: httpx.AsyncClient) -> None:
    await _register(client, "erin")
    again = await client.post("/auth/register", json={"username": "Erin", "password": PASSWORD})
    assert again.status_code == 409


async def test_short_password_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", json={"username": "fay", "password": "short"})
    assert response.status_code == 422


async def test_wrong_password_and_unknown_user_are_401(client: httpx.AsyncClient) -> None:
    await _register(client, "gus")
    wrong = await client.post("/auth/login", json={"username": "gus", "password": "nope-nope"})
    unknown = await client.post("/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "Incorrect username or password"


async def _spent_long_ago(engine: AsyncEngine, refresh_token: object, seconds: float) -> None:
    """Date a refresh token's use back (the grace for a lost answer has passed)."""
    token_id = jwt.decode(str(refresh_token), options={"verify_signature": False})["jti"]
    async with engine.begin() as connection:
        await connection.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id)
            .values(used_at=utcnow() - timedelta(seconds=seconds))
        )


async def test_refresh_rotates_and_a_later_reuse_revokes_the_family(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    first = await _register(client, "hal")
    rotated = await _refresh(client, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]

    grace = settings.jwt.refresh_reuse_grace_seconds
    await _spent_long_ago(engine, first["refresh_token"], grace + 1)
    reused = await _refresh(client, first["refresh_token"])
    assert reused.status_code == 401
    assert "already used" in reused.json()["detail"]
    # The reuse revoked the whole family, so the legitimate newer token is dead too.
    after = await _refresh(client, second["refresh_token"])
    assert after.status_code == 401


async def test_a_refresh_whose_answer_was_lost_can_be_repeated_at_once(
    client: httpx.AsyncClient,
) -> None:
    # The server spent the token, but its answer never arrived (the page unloaded, the
    # network dropped it): the client still holds only the spent token.
    first = await _register(client, "hank")
    lost = await _refresh(client, first["refresh_token"])
    assert lost.status_code == 200

    again = await _refresh(client, first["refresh_token"])
    assert again.status_code == 200, again.text
    retried = again.json()
    assert retried["refresh_token"] not in {first["refresh_token"], lost.json()["refresh_token"]}
    me = await client.get("/auth/me", headers=auth(retried["access_token"]))
    assert me.json()["username"] == "hank"
    # Nothing was revoked: both successors rotate (a tab that did get the lost answer
    # carries on too), each once.
    for successor in (retried, lost.json()):
        rotated = await _refresh(client, successor["refresh_token"])
        assert rotated.status_code == 200, rotated.text


async def test_a_revoked_family_stays_revoked_within_the_grace(
    client: httpx.AsyncClient,
) -> None:
    first = await _register(client, "hugo")
    rotated = await _refresh(client, first["refresh_token"])
    assert rotated.status_code == 200
    logout = await client.post(
        "/auth/logout", json={"refresh_token": rotated.json()["refresh_token"]}
    )
    assert logout.status_code == 204
    # Signed out a moment after the rotation: the spent token does not sign back in.
    reused = await _refresh(client, first["refresh_token"])
    assert reused.status_code == 401
    assert "revoked" in reused.json()["detail"]


async def test_access_token_is_not_a_refresh_token(client: httpx.AsyncClient) -> None:
    pair = await _register(client, "ivy")
    response = await _refresh(client, pair["access_token"])
    assert response.status_code == 401


async def test_me_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def _forged(settings: Settings, **changes: object) -> str:
    now = utcnow()
    payload: dict[str, object] = {
        "sub": "someone",
        "typ": "access",
        "jti": "x",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "iss": settings.jwt.issuer,
        "aud": settings.jwt.audience,
    }
    payload.update(changes)
    secret = str(payload.pop("secret", settings.jwt.secret.get_secret_value()))
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"secret": "another-secret-entirely-different"}, "Invalid token"),
        ({"aud": "someone-else"}, "Invalid token"),
        ({"iss": "evil"}, "Invalid token"),
        ({"exp": utcnow() - timedelta(minutes=5)}, "Token has expired"),
    ],
)
async def test_bad_tokens_are_401(
    client: httpx.AsyncClient, settings: Settings, changes: dict[str, object], detail: str
) -> None:
    response = await client.get("/auth/me", headers=auth(_forged(settings, **changes)))
    assert response.status_code == 401
    assert response.json()["detail"] == detail


async def test_malformed_authorization_header_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/me", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
    garbage = await client.get("/auth/me", headers=auth("not.a.jwt"))
    assert garbage.status_code == 401


async def test_token_for_deleted_or_unknown_user_is_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token, _ = issue_token(settings.jwt, subject="ghost", kind="access", ttl_seconds=60)
    response = await client.get("/auth/me", headers=auth(token))
    assert response.status_code == 401


def test_tokens_carry_issuer_audience_and_expiry() -> None:
    settings = JWTSettings()
    token, claims = issue_token(settings, subject="u1", kind="access", ttl_seconds=60)
    payload = jwt.decode(
        token, settings.secret.get_secret_value(), algorithms=["HS256"], audience="videochat"
    )
    assert payload["iss"] == "videochat" and payload["sub"] == "u1"
    assert payload["exp"] - payload["iat"] == 60
    assert claims.kind == "access"
