"""``videochat check``: validate the settings and reach every configured service."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from videochat.config import DEFAULT_JWT_SECRET, SECRET_FILE, Environment, Settings

TIMEOUT_SECONDS = 5.0

# Opens (and at the end disposes) an engine for the settings: the CLI passes
# ``videochat.runtime``'s database subset.
OpenEngine = Callable[[Settings], AbstractAsyncContextManager[AsyncEngine]]


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def settings_result(settings: Settings) -> CheckResult:
    """Facts and warnings about valid settings (warnings do not fail the check)."""
    notes = [f"environment={settings.environment.value}", f"auth_mode={settings.auth_mode.value}"]
    if settings.jwt.secret.get_secret_value() == DEFAULT_JWT_SECRET:
        if settings.environment is Environment.TEST:
            notes.append("warning: VIDEOCHAT_JWT__SECRET is the published test default")
        else:
            kept = settings.data_dir / SECRET_FILE
            notes.append(f"VIDEOCHAT_JWT__SECRET unset: signing with the secret in {kept}")
    if settings.turn.urls and not settings.turn.secret:
        notes.append("warning: TURN urls set without VIDEOCHAT_TURN__SECRET")
    return CheckResult("settings", True, ", ".join(notes))


async def check_database(settings: Settings, open_engine: OpenEngine) -> CheckResult:
    """Connect, run a query and compare the schema with the newest migration."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from videochat.db.migrate import alembic_config

    shown = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    try:
        async with (
            open_engine(settings) as engine,
            asyncio.timeout(TIMEOUT_SECONDS),
            engine.connect() as connection,
        ):
            await connection.execute(text("SELECT 1"))
            try:
                current = (
                    await connection.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar()
            except Exception:
                current = None
    except Exception as exc:
        return CheckResult("database", False, f"{shown}: {_error(exc)}")
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if current == head:
        schema = f"schema at {head}"
    else:
        # Not a failure: ``serve`` and ``migrate`` bring it up to date.
        schema = f"schema at {current or 'nothing'}, newest is {head}: run `videochat migrate`"
    return CheckResult("database", True, f"{shown} ({schema})")


async def check_redis(settings: Settings) -> CheckResult:
    """Ping Redis when one is configured."""
    url = settings.redis.url
    if not url:
        return CheckResult("redis", True, "not configured: in-process broker, limits and jobs")
    from redis.asyncio import Redis

    client = Redis.from_url(
        url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS
    )
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            await client.ping()
            info = await client.info("server")
    except Exception as exc:
        return CheckResult("redis", False, f"{_hide_password(url)}: {_error(exc)}")
    finally:
        await client.aclose()
    return CheckResult(
        "redis", True, f"{_hide_password(url)} (redis {info.get('redis_version', '?')})"
    )


def check_data_dir(settings: Settings) -> CheckResult:
    """The data folder exists (or can be made) and takes a file."""
    path = settings.data_dir.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".check-"):
            pass
    except OSError as exc:
        return CheckResult("data dir", False, f"{path}: {_error(exc)}")
    return CheckResult("data dir", True, f"{path} is writable")


def check_media() -> CheckResult:
    """PyAV (and the FFmpeg in its wheel), which transcoding and live HLS need."""
    try:
        import av
    except Exception as exc:
        return CheckResult("media", False, f"PyAV: {_error(exc)}")
    return CheckResult("media", True, f"PyAV {av.__version__}")


async def run_checks(settings: Settings, open_engine: OpenEngine) -> list[CheckResult]:
    """Every check, in the order the report lists them."""
    database, redis = await asyncio.gather(
        check_database(settings, open_engine), check_redis(settings)
    )
    return [settings_result(settings), database, redis, check_data_dir(settings), check_media()]


def report(results: list[CheckResult]) -> str:
    """The table ``videochat check`` prints."""
    width = max(len(result.name) for result in results)
    lines = [
        f"{'ok  ' if result.ok else 'FAIL'}  {result.name.ljust(width)}  {result.detail}"
        for result in results
    ]
    failed = [result.name for result in results if not result.ok]
    summary = f"{len(failed)} problem(s): {', '.join(failed)}" if failed else "all checks passed"
    lines.append(summary)
    return "\n".join(lines)


def check(open_engine: OpenEngine) -> tuple[bool, str]:
    """Load the settings from the environment and run every check; (all passed, report)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        return False, f"FAIL  settings  {exc}"
    results = asyncio.run(run_checks(settings, open_engine))
    return all(result.ok for result in results), report(results)
