"""``/`` and ``/chat``: the API's front page and the web client (and its icon)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from videochat import __version__
from videochat.context import SettingsDep

STATIC_DIR = Path(__file__).parent / "static"
router = APIRouter(tags=["web"])


@router.get("/", response_model=None)
async def root(request: Request, settings: SettingsDep) -> dict[str, Any] | Response:
    """API index; a browser is sent to the web client."""
    accept = request.headers.get("accept", "")
    if "text/html" in accept:
        return RedirectResponse("/chat", status_code=307)
    return {
        "message": "videochat: self-hosted video chat",
        "version": __version__,
        # Production serves no API docs unless asked to: point nowhere then.
        "docs": "/docs" if settings.api_docs else None,
        "health": "/health",
        "chat": "/chat",
        "metrics": "/metrics",
        "websocket": "/ws/{room_id}/{user_id}",
    }


@router.get("/chat", include_in_schema=False)
@router.get("/chat/{path:path}", include_in_schema=False)
async def web_client(path: str = "") -> FileResponse:
    """The single-page client; it routes ``/chat/rooms/{id}`` itself."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The app's icon where browsers look for it on their own (any page without an icon
    link, a JSON answer say): a 404 there is noise in every log and console."""
    return FileResponse(
        STATIC_DIR / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )
