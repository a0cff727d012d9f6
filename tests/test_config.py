"""Settings: environment variables, nesting, and the production refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from videochat.config import AuthMode, Settings


def test_environment_variables_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOCHAT_ENVIRONMENT", "test")
    monkeypatch.setenv("VIDEOCHAT_RATE_LIMIT__REQUESTS", "7")
    monkeypatch.setenv("VIDEOCHAT_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    monkeypatch.setenv("VIDEOCHAT_AUTH_MODE", "open")
    settings = Settings()
    assert settings.rate_limit.requests == 7
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.auth_mode is AuthMode.OPEN


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: object) -> None:
    settings = Settings(data_dir="/srv/vc")
    assert settings.resolved_database_url == "sqlite+aiosqlite:////srv/vc/videochat.db"


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValidationError, match="JWT__SECRET"):
        Settings(environment="production")


def test_production_refuses_open_mode() -> None:
    with pytest.raises(ValidationError, match="open is refused"):
        Settings(
            environment="production",
            auth_mode="open",
            jwt={"secret": "s" * 40},
            public_url="https://chat.example.org",
        )


def test_production_accepts_a_real_secret() -> None:
    settings = Settings(
        environment="production", jwt={"secret": "s" * 40}, public_url="https://a.example"
    )
    assert settings.is_production and settings.json_logs


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(environment="staging")
    with pytest.raises(ValidationError):
        Settings(rate_limit={"requests": 0})


def test_production_needs_allowed_hosts_or_a_public_url() -> None:
    with pytest.raises(ValidationError, match="ALLOWED_HOSTS"):
        Settings(environment="production", jwt={"secret": "s" * 40})
    derived = Settings(
        environment="production", jwt={"secret": "s" * 40}, public_url="https://chat.example.org"
    )
    assert derived.http.allowed_hosts == ["chat.example.org"]
    named = Settings(
        environment="production", jwt={"secret": "s" * 40}, http={"allowed_hosts": ["a.example"]}
    )
    assert named.http.allowed_hosts == ["a.example"]
