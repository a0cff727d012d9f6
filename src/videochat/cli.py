"""The ``videochat`` command: ``serve`` and ``migrate``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from pydantic import ValidationError

from videochat.config import Settings, get_settings


def _load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        print(f"videochat: invalid settings:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from exc


async def _migrate(settings: Settings) -> None:
    from videochat.db.engine import create_engine
    from videochat.db.migrate import upgrade_to_head

    engine = create_engine(settings)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


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
    uvicorn.run(
        "videochat.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        ws_max_size=settings.realtime.max_frame_bytes,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videochat", description="Self-hosted video chat server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default=os.environ.get("VIDEOCHAT_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("VIDEOCHAT_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    serve.set_defaults(handler=cmd_serve)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``videochat`` command."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
