"""The ``videochat`` command: ``serve``, ``migrate``, ``create-admin`` and ``check``."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import getpass
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from videochat.config import Settings, get_settings

# Allocations between two young-generation collections (Python's default: 700).
GC_YOUNG_THRESHOLD = 20_000


def _load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        print(f"videochat: invalid settings:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from exc


async def _migrate(settings: Settings) -> None:
    from videochat.db.lifecycle import open_database

    async with open_database(settings, migrate=True):
        pass


def cmd_migrate(_: argparse.Namespace) -> int:
    """Apply database migrations."""
    settings = _load_settings()
    asyncio.run(_migrate(settings))
    print(f"videochat: database is up to date ({_safe_url(settings)})")
    return 0


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """Migrate, then run the server under uvicorn."""
    import uvicorn

    from videochat.realtime.wire import uvicorn_websocket_options
    from videochat.security.header_timeout import uvicorn_http_options

    settings = _load_settings()
    if args.workers > 1 and not settings.redis.url:
        # Each worker would have its own in-process broker: people in one room on
        # different workers would not see each other.
        print("videochat: --workers > 1 needs VIDEOCHAT_REDIS__URL", file=sys.stderr)
        return 2
    in_memory = ":memory:" in settings.resolved_database_url
    if not in_memory:
        asyncio.run(_migrate(settings))
        # The workers must not race each other through the same migrations.
        os.environ["VIDEOCHAT_DATABASE__AUTO_MIGRATE"] = "false"
        get_settings.cache_clear()
    shown_host = "localhost" if args.host in {"0.0.0.0", "127.0.0.1", "::"} else args.host
    print(
        f"videochat {settings.environment.value}: http://{shown_host}:{args.port}/chat", flush=True
    )
    metrics_dir = _prepare_metrics_dir(args.workers)
    if metrics_dir is not None:
        atexit.register(shutil.rmtree, metrics_dir, True)
    _settle_the_heap()
    uvicorn.run(
        "videochat.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        **uvicorn_websocket_options(settings),
        **uvicorn_http_options(settings),
    )
    return 0


# The files prometheus_client's multiprocess mode writes (counter_123.db, gauge_livesum_123.db).
_METRIC_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")


def _settle_the_heap() -> None:
    """Fewer, cheaper garbage collections for a long-running server.

    What is loaded by now (settings, pydantic, the libraries the CLI imported) lives
    as long as the process: ``gc.freeze`` keeps the collector from walking it again at
    every full collection. And young collections every 700 allocations were about 5%
    of a busy server's CPU (chat at 10,000 deliveries/s, ``perf``): every frame and
    message allocates a few containers, almost none of them in a cycle.
    (In-process only: ``--workers`` processes start with Python's defaults.)
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def _prepare_metrics_dir(workers: int) -> Path | None:
    """Give the workers one folder to add their metrics up in; returns one made here."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        # A previous run's counters would be added to this run's.
        for stale in path.iterdir():
            if _METRIC_FILE.match(stale.name):
                stale.unlink(missing_ok=True)
        return None
    if workers <= 1:
        return None
    made = Path(tempfile.mkdtemp(prefix="videochat-metrics-"))
    # Inherited by uvicorn's worker processes, which read it when they import the metrics.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(made)
    return made


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("videochat: no terminal to ask for the password on; use --password-stdin")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != password:
        raise SystemExit("videochat: the passwords differ")
    return password


async def _create_admin(settings: Settings, username: str, password: str) -> str | None:
    """Create the account; returns its id, or None when the name is taken."""
    from sqlalchemy.exc import IntegrityError

    from videochat.accounts import repository
    from videochat.accounts.passwords import hash_password
    from videochat.db.engine import create_sessionmaker
    from videochat.db.lifecycle import open_database
    from videochat.db.models import User
    from videochat.db.unit_of_work import unit_of_work

    async with open_database(settings, migrate=True) as engine:
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                if await repository.get_registered_by_name(session, username):
                    return None
                user = User(
                    username=username,
                    is_guest=False,
                    is_admin=True,
                    password_hash=hash_password(password),
                )
                session.add(user)
        except IntegrityError:  # registered through the API meanwhile
            return None
        return user.id


def cmd_create_admin(args: argparse.Namespace) -> int:
    """Create a registered administrator account."""
    from pydantic import TypeAdapter

    from videochat.accounts.schemas import Password, Username

    settings = _load_settings()
    try:
        username = TypeAdapter(Username).validate_python(args.username)
    except ValidationError:
        print("videochat: a username is 2 to 50 letters, digits, '-' or '_'", file=sys.stderr)
        return 2
    password = _read_password(args.password_stdin)
    try:
        TypeAdapter(Password).validate_python(password)
    except ValidationError:
        print("videochat: a password is 8 to 128 characters", file=sys.stderr)
        return 2
    user_id = asyncio.run(_create_admin(settings, username, password))
    if user_id is None:
        print(f"videochat: the username '{username}' is already taken", file=sys.stderr)
        return 1
    print(f"videochat: created admin '{username}' (id {user_id})")
    return 0


def cmd_check(_: argparse.Namespace) -> int:
    """Validate the settings and reach every configured service."""
    from functools import partial

    from videochat.db.lifecycle import open_database
    from videochat.observability.checks import check

    ok, text = check(partial(open_database, migrate=False))
    print(text)
    return 0 if ok else 1


def cmd_worker(_: argparse.Namespace) -> int:
    """Run video jobs from the Redis queue until SIGINT/SIGTERM."""
    settings = _load_settings()
    if not settings.redis.url:
        print(
            "videochat: worker needs VIDEOCHAT_REDIS__URL (without it the server runs jobs itself)",
            file=sys.stderr,
        )
        return 2
    from videochat.observability.logging import configure_logging
    from videochat.runtime import run_worker

    configure_logging(settings)
    asyncio.run(run_worker(settings))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videochat", description="Self-hosted video chat server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default=os.environ.get("VIDEOCHAT_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("VIDEOCHAT_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1)
    # Peers whose X-Forwarded-For is believed (the reverse proxy); nobody else's is.
    serve.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("VIDEOCHAT_FORWARDED_ALLOW_IPS", "127.0.0.1"),
    )
    serve.set_defaults(handler=cmd_serve)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=cmd_migrate)
    worker = commands.add_parser("worker", help="run video jobs from the Redis queue")
    worker.set_defaults(handler=cmd_worker)
    admin = commands.add_parser("create-admin", help="create a registered admin account")
    admin.add_argument("--username", required=True)
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    admin.set_defaults(handler=cmd_create_admin)
    check = commands.add_parser("check", help="validate settings and reach every service")
    check.set_defaults(handler=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``videochat`` command."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
