"""``videochat create-admin`` and ``videochat check``, run as the real command."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from tests import services
from tests.processes import server_env
from tests.support import run_server
from videochat import cli
from videochat.config import Settings, get_settings
from videochat.db.models import User

PASSWORD = "a-long-admin-password"


def _videochat(
    env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "videochat.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _users(database_url: str) -> list[User]:
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as session:
            return list((await session.scalars(select(User))).all())
    finally:
        await engine.dispose()


async def test_create_admin_makes_a_registered_admin_that_can_log_in(
    tmp_path: Path, database_url: str, make_settings: Callable[..., Settings]
) -> None:
    env = server_env(tmp_path / "data", database_url)
    made = _videochat(
        env, "create-admin", "--username", "root-admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    assert "created admin 'root-admin'" in made.stdout

    (admin,) = [user for user in await _users(database_url) if user.username == "root-admin"]
    assert admin.is_admin is True and admin.is_guest is False
    assert admin.password_hash and PASSWORD not in admin.password_hash
    async with run_server(make_settings()) as live, httpx.AsyncClient(base_url=live.url) as http:
        login = await http.post(
            "/auth/login", json={"username": "root-admin", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        assert login.json()["user"]["id"] == admin.id


def test_create_admin_refuses_a_taken_name_and_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process (the subprocess path is covered above): same parser, same handler.
    monkeypatch.setenv("VIDEOCHAT_ENVIRONMENT", "test")
    monkeypatch.setenv("VIDEOCHAT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIDEOCHAT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    try:

        def create(name: str, password: str) -> int:
            monkeypatch.setattr("sys.stdin", _Lines(password + "\n"))
            return cli.main(["create-admin", "--username", name, "--password-stdin"])

        assert create("boss", PASSWORD) == 0
        assert create("BOSS", PASSWORD) == 1  # names are unique case-insensitively
        assert "the username 'BOSS' is already taken" in capsys.readouterr().err
        assert create("no spaces allowed", PASSWORD) == 2
        assert create("shortpw", "short") == 2
        users = asyncio.run(_users(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"))
        assert [user.username for user in users] == ["boss"]
    finally:
        get_settings.cache_clear()


class _Lines:
    """A stand-in for stdin holding some text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def readline(self) -> str:
        return self.text

    def isatty(self) -> bool:
        return False


@pytest.mark.postgres
@pytest.mark.redis
def test_check_reports_every_service(tmp_path: Path, postgres_url: str) -> None:
    # The production shape, once: PostgreSQL and Redis (the command is slow to start).
    services.redis_available()
    env = server_env(tmp_path / "data", postgres_url, VIDEOCHAT_REDIS__URL=services.REDIS_URL)
    result = _videochat(env, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in ("settings", "database", "redis", "data dir", "media"):
        assert any(line.startswith("ok") and f" {name} " in line for line in lines), name
    assert lines[-1] == "all checks passed"


def test_check_fails_with_a_clear_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("VIDEOCHAT_ENVIRONMENT", "test")
    monkeypatch.setenv("VIDEOCHAT_DATA_DIR", str(blocker / "data"))
    monkeypatch.setenv("VIDEOCHAT_DATABASE_URL", "postgresql+asyncpg://nobody:pw@127.0.0.1:1/none")
    monkeypatch.setenv("VIDEOCHAT_REDIS__URL", "redis://:hunter2@127.0.0.1:1/0")
    assert cli.main(["check"]) == 1
    out = capsys.readouterr().out
    failed = {line.split()[1] for line in out.splitlines() if line.startswith("FAIL")}
    assert failed == {"database", "redis", "data"}
    assert "hunter2" not in out and ":pw@" not in out  # passwords are hidden
    assert out.splitlines()[-1] == "3 problem(s): database, redis, data dir"

    # Invalid settings are a failed check too, not a traceback.
    monkeypatch.setenv("VIDEOCHAT_ENVIRONMENT", "production")
    assert cli.main(["check"]) == 1
    assert "FAIL  settings" in capsys.readouterr().out
