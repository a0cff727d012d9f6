"""``GET /rtc/ice-servers``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from videochat.accounts.auth import CurrentUser
from videochat.calls.service import ice_configuration
from videochat.context import SettingsDep

router = APIRouter(tags=["calls"])


@router.get("/rtc/ice-servers")
async def ice_servers(user: CurrentUser, settings: SettingsDep) -> dict[str, Any]:
    """STUN and TURN servers, with TURN credentials valid for ``ttl_seconds``."""
    return ice_configuration(settings, user.id)
