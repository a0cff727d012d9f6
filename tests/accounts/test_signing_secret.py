"""The signing secret: never the published default outside ``test``, kept in the data dir."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.support import auth, create_guest, run_server
from videochat.config import DEFAULT_JWT_SECRET, SECRET_FILE, Settings, with_signing_secret
from videochat.kit.clock import utcnow


def _development(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"environment": "development", "data_dir": tmp_path / "data"}
    return Settings(**{**values, **overrides})


def test_a_fresh_data_dir_gets_a_private_random_secret(tmp_path: Path) -> None:
    settings = with_signing_secret(_development(tmp_path))
    secret = settings.jwt.secret.get_secret_value()
    assert secret != DEFAULT_JWT_SECRET and len(secret) >= 32
    stored = tmp_path / "data" / SECRET_FILE
    assert stored.read_text().strip() == secret
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    # Another data dir, another secret.
    other = with_signing_secret(_development(tmp_path / "other"))
    assert other.jwt.secret.get_secret_value() != secret


def test_a_restart_keeps_the_secret(tmp_path: Path) -> None:
    first = with_signing_secret(_development(tmp_path)).jwt.secret.get_secret_value()
    again = with_signing_secret(_development(tmp_path)).jwt.secret.get_secret_value()
    assert first == again


def test_a_secret_that_is_set_is_used_as_it_is(tmp_path: Path) -> None:
    settings = with_signing_secret(_development(tmp_path, jwt={"secret": "x" * 40}))
    assert settings.jwt.secret.get_secret_value() == "x" * 40
    assert not (tmp_path / "data" / SECRET_FILE).exists()


def test_setting_the_published_default_does_not_bring_it_back(tmp_path: Path) -> None:
    settings = with_signing_secret(_development(tmp_path, jwt={"secret": DEFAULT_JWT_SECRET}))
    assert settings.jwt.secret.get_secret_value() != DEFAULT_JWT_SECRET


async def test_a_token_signed_with_the_published_default_is_refused(
    make_settings: Any,
) -> None:
    settings = make_settings(environment="development")
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        guest = await create_guest(http, "victim")
        assert (await http.get("/auth/me", headers=auth(guest["access_token"]))).status_code == 200
        now = utcnow()
        forged = jwt.encode(
            {
                "sub": guest["id"],
                "typ": "access",
                "jti": "forged",
                "iat": now,
                "exp": now + timedelta(minutes=5),
                "iss": settings.jwt.issuer,
                "aud": settings.jwt.audience,
            },
            DEFAULT_JWT_SECRET,
            algorithm="HS256",
        )
        refused = await http.get("/auth/me", headers=auth(forged))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "Invalid token"
