"""Absolute URLs for answers: scripts and other origins use a URL exactly as given."""

from __future__ import annotations

from starlette.requests import HTTPConnection


def origin(public_url: str | None, connection: HTTPConnection) -> str:
    """What every URL in an answer starts with (no trailing slash).

    The configured public URL when there is one; else the request's scheme, host and
    root path as uvicorn saw them (it applies X-Forwarded-Proto/-For only from
    ``--forwarded-allow-ips``, and never X-Forwarded-Host).
    """
    if public_url:
        return public_url.rstrip("/")
    return str(connection.base_url).rstrip("/")
