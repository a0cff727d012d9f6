"""Service endpoints: ``/health`` with its ``/live`` and ``/ready`` probes, and metrics."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse

from videochat import __version__
from videochat.config import Settings
from videochat.context import Context
from videochat.db.engine import ping
from videochat.exceptions import Forbidden, NotFound, Unauthorized
from videochat.kit.clock import isoformat, utcnow
from videochat.observability import metrics
from videochat.observability.health import ReadinessCheck

router = APIRouter(tags=["service"])
log = structlog.get_logger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0
CLOSED = (
    "Metrics are closed in production: set VIDEOCHAT_OBSERVABILITY__METRICS_TOKEN "
    "and send it as a bearer token"
)


def _has_metrics_token(request: Request, settings: Settings) -> bool:
    token = settings.observability.metrics_token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.get_secret_value().encode())


def may_read_metrics(request: Request, context: Context) -> bool:
    """Whether the caller may see figures: metrics are open, or it sent the metrics token."""
    settings = context.settings
    return not settings.metrics_closed or _has_metrics_token(request, settings)


def require_metrics_reader(request: Request, context: Context) -> None:
    """403 while metrics are closed with no token set; 401 without the right token."""
    if may_read_metrics(request, context):
        return
    if context.settings.observability.metrics_token is None:
        raise Forbidden(CLOSED)
    raise Unauthorized("Metrics need the metrics bearer token")


MetricsReader = Annotated[bool, Depends(may_read_metrics)]


async def _ready(name: str, check: ReadinessCheck) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("health.check_failed", service=name, error=type(exc).__name__)
        return {"status": "unhealthy", "error": type(exc).__name__}


async def _check(name: str, probe: Any) -> dict[str, Any]:
    try:
        await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("health.check_failed", service=name, error=type(exc).__name__)
        return {"status": "unhealthy", "error": type(exc).__name__}
    return {"status": "healthy"}


async def _ping_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(
        url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


@router.get("/health/live")
async def health_live() -> dict[str, Any]:
    """Liveness: the process answers; depends on nothing else."""
    return {"status": "alive", "timestamp": isoformat(utcnow()), "version": __version__}


@router.get(
    "/health/ready",
    responses={503: {"description": "A dependency is down; the body says which"}},
)
async def health_ready(context: Context) -> JSONResponse:
    """Readiness: database, Redis (when configured) and the parts registered; 503 when one fails."""
    checks: dict[str, Any] = {"database": await _check("database", ping(context.engine))}
    if context.settings.redis.url:
        checks["redis"] = await _check("redis", _ping_redis(context.settings.redis.url))
    for name, check in context.health.readiness.items():
        checks[name] = await _ready(name, check)
    ready = all(check["status"] == "healthy" for check in checks.values())
    body = {
        "status": "ready" if ready else "not_ready",
        "timestamp": isoformat(utcnow()),
        "checks": checks,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/health")
async def health(context: Context, show_stats: MetricsReader) -> JSONResponse:
    """Whether the service and what it depends on work; 503 when one does not.

    The stats are left out for strangers while metrics are closed (production).
    """
    settings = context.settings
    database = await _check("database", ping(context.engine))
    broker = (
        await _check("redis", _ping_redis(settings.redis.url))
        if settings.redis.url
        else {"status": "healthy"}
    )
    services: dict[str, Any] = {
        "database": {**database, "backend": context.engine.dialect.name},
        "broker": {**broker, "backend": "redis" if settings.redis.url else "memory"},
    }
    stats: dict[str, Any] = {
        "active_rooms": len({c.room_id for c in _all_connections(context)}),
        "active_users": len({c.user_id for c in _all_connections(context)}),
        **dict.fromkeys(context.health.totals),
    }
    if show_stats and database["status"] == "healthy":
        try:
            stats.update(
                await asyncio.wait_for(
                    context.health.counted_totals(context.sessionmaker),
                    timeout=CHECK_TIMEOUT_SECONDS,
                )
            )
        except Exception as exc:  # the database went away between the checks
            services["database"] = {"status": "unhealthy", "error": type(exc).__name__}
    healthy = all(service["status"] == "healthy" for service in services.values())
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": isoformat(utcnow()),
        "version": __version__,
        "environment": settings.environment.value,
        "services": services,
    }
    if show_stats:
        body["stats"] = stats
    return JSONResponse(body, status_code=200 if healthy else 503)


def _all_connections(context: Context) -> list[Any]:
    return context.hub.all_connections()


@router.get("/_debug")
async def debug(context: Context) -> dict[str, Any]:
    """Non-secret facts about the configuration (not in production)."""
    settings = context.settings
    if settings.is_production:
        raise NotFound("Not Found")
    return {
        "bunny_enabled": settings.bunny.enabled,
        "environment": settings.environment.value,
        "version": __version__,
        "auth_mode": settings.auth_mode.value,
        "database_backend": context.engine.dialect.name,
        "redis_enabled": bool(settings.redis.url),
        "rate_limit_enabled": settings.rate_limit.enabled,
        "turn_configured": bool(settings.turn.urls and settings.turn.secret),
        "max_upload_bytes": settings.media.max_upload_bytes,
        "data_dir": str(settings.data_dir),
    }


@router.get("/metrics", dependencies=[Depends(require_metrics_reader)])
async def metrics_summary() -> dict[str, Any]:
    """The prototype's JSON summary of requests, sockets and video."""
    return metrics.summary()


@router.get("/metrics/prometheus", dependencies=[Depends(require_metrics_reader)])
async def metrics_prometheus(accept: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus exposition in the format Accept asks for (text 0.0.4 by default)."""
    body, content_type = metrics.exposition(accept)
    return Response(body, media_type=content_type, headers={"Vary": "Accept"})
