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


def frame_url(public_url: str | None, path: str) -> str:
    """A URL in a socket frame: absolute when a public URL is configured, else ``path``.

    A frame is serialised once for every socket in the room, on every instance, so no
    request names a host to derive one from: without a public URL a client resolves the
    path against the server it connected to (the web client does).
    """
    return f"{public_url.rstrip('/')}{path}" if public_url else path
