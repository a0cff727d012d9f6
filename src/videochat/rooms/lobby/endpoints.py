"""HTTP routes of a private room's lobby: knock, wait, admit, deny."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from limits import RateLimitItemPerSecond

from videochat.accounts.auth import CurrentUser
from videochat.config import LobbySettings
from videochat.context import Context, Session, SettingsDep
from videochat.db.models import RoomKnock, User
from videochat.db.unit_of_work import after_commit
from videochat.rooms import policy, repository
from videochat.rooms.lobby import service as lobby
from videochat.rooms.lobby.service import lobby_frame
from videochat.rooms.schemas import JoinResult, KnockOut
from videochat.security.ratelimit import Limiter, client_ip

router = APIRouter(tags=["lobby"])


def _out(knock: RoomKnock, username: str, settings: LobbySettings) -> KnockOut:
    return KnockOut(
        room_id=knock.room_id,
        user_id=knock.user_id,
        username=username,
        status=lobby.status_of(knock, settings),
        created_at=knock.created_at,
        decided_at=knock.decided_at,
    )


@router.post("/rooms/{room_id}/lobby", response_model=KnockOut)
async def knock(
    room_id: str,
    request: Request,
    response: Response,
    session: Session,
    settings: SettingsDep,
    user: CurrentUser,
    context: Context,
) -> KnockOut:
    """Ask to be let into a private room; poll ``GET .../lobby/me`` for the answer."""
    limiter: Limiter = context.limiter
    await limiter.enforce(limiter.knocks, "knock", user.id, detail="Too many knocks")
    # Per address too: throwaway guests from one address would each have their own
    # budget above. Over a knock's lifetime, so one address never fills a lobby.
    rules = settings.lobby
    per_address = RateLimitItemPerSecond(rules.knocks_per_address, rules.knock_ttl_seconds)
    await limiter.enforce(
        per_address,
        "knock-address",
        room_id,
        client_ip(request.scope),
        detail="Too many people knocked on this room from your address",
    )
    room, found, new = await lobby.knock(session, settings.lobby, room_id=room_id, user=user)
    if found is None:  # already a member
        return KnockOut(room_id=room.id, user_id=user.id, username=user.username, status="admitted")
    out = _out(found, user.username, settings.lobby)
    if new:
        response.status_code = 201
        frame = lobby_frame("knock", user_id=user.id, username=user.username)
        _publish(session, context, room.id, policy.managers(room), frame)
    return out


def _publish(
    session: Session, context: Context, room_id: str, to: list[str], frame: dict[str, Any]
) -> None:
    """Once committed, a ``lobby`` frame for each of the room's managers (on any instance)."""

    async def publish() -> None:
        for user_id in to:
            await context.hub.publish(room_id, frame, to_user=user_id)

    after_commit(session, publish)


@router.get("/rooms/{room_id}/lobby/me", response_model=KnockOut)
async def my_knock(
    room_id: str, session: Session, settings: SettingsDep, user: CurrentUser
) -> KnockOut:
    """The caller's knock: pending, admitted, denied or expired."""
    found = await lobby.mine(session, room_id=room_id, user_id=user.id)
    return _out(found, user.username, settings.lobby)


@router.delete("/rooms/{room_id}/lobby/me", status_code=204)
async def withdraw_knock(
    room_id: str, session: Session, settings: SettingsDep, user: CurrentUser, context: Context
) -> Response:
    """Stop waiting."""
    await lobby.withdraw(session, room_id=room_id, user_id=user.id)
    room = await repository.get_room(session, room_id)
    if room is not None:
        frame = lobby_frame("withdraw", user_id=user.id, username=user.username)
        _publish(session, context, room_id, policy.managers(room), frame)
    return Response(status_code=204)


@router.get("/rooms/{room_id}/lobby", response_model=list[KnockOut])
async def waiting(
    room_id: str, session: Session, settings: SettingsDep, user: CurrentUser
) -> list[KnockOut]:
    """Who waits in the lobby, oldest first (owner and moderators only)."""
    rows = await lobby.waiting(session, settings.lobby, room_id=room_id, actor_id=user.id)
    return [_out(found, username, settings.lobby) for found, username in rows]


async def _decide(
    room_id: str,
    user_id: str,
    session: Session,
    settings: SettingsDep,
    actor: User,
    context: Context,
    *,
    admit: bool,
) -> JoinResult:
    room, target = await lobby.decide(
        session, settings.lobby, room_id=room_id, actor_id=actor.id, target_id=user_id, admit=admit
    )
    action = "admit" if admit else "deny"
    frame = lobby_frame(action, user_id=target.id, username=target.username, by=actor.id)
    _publish(session, context, room_id, policy.managers(room), frame)
    verb = "was let in" if admit else "was turned away"
    return JoinResult(message=f"{target.username} {verb}")


@router.post("/rooms/{room_id}/lobby/{user_id}/admit", response_model=JoinResult)
async def admit(
    room_id: str,
    user_id: str,
    session: Session,
    settings: SettingsDep,
    user: CurrentUser,
    context: Context,
) -> JoinResult:
    """Let a waiting person in: they become a member (owner and moderators)."""
    return await _decide(room_id, user_id, session, settings, user, context, admit=True)


@router.post("/rooms/{room_id}/lobby/{user_id}/deny", response_model=JoinResult)
async def deny(
    room_id: str,
    user_id: str,
    session: Session,
    settings: SettingsDep,
    user: CurrentUser,
    context: Context,
) -> JoinResult:
    """Turn a waiting person away; their knock reads ``denied`` (owner and moderators)."""
    return await _decide(room_id, user_id, session, settings, user, context, admit=False)
