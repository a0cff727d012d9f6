"""HTTP routes of the accounts domain: ``/users`` and ``/auth/*``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from videochat.accounts import login_guard
from videochat.accounts import service as accounts
from videochat.accounts.auth import CurrentUser, OptionalUser, require_actor
from videochat.accounts.schemas import (
    GuestCreated,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    SocketTicket,
    TokenPair,
    UserCreate,
    UserOut,
)
from videochat.config import AuthMode
from videochat.context import Session, SettingsDep, get_context
from videochat.kit.pagination import Offset
from videochat.observability import metrics
from videochat.security.identity import access_claims
from videochat.security.ratelimit import client_ip
from videochat.security.tickets import issue_socket_ticket

router = APIRouter(tags=["accounts"])


@router.post("/users", response_model=GuestCreated)
async def create_user(body: UserCreate, session: Session, settings: SettingsDep) -> GuestCreated:
    """Create a guest account; the response carries its access token."""
    guest = await accounts.create_guest(session, username=body.username, jwt=settings.jwt)
    metrics.USERS_CREATED.inc()
    return guest


@router.get("/users", response_model=list[UserOut])
async def list_users(
    session: Session,
    settings: SettingsDep,
    caller: OptionalUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Offset = 0,
) -> list[UserOut]:
    """Users, oldest first: in ``token`` mode the caller and the people in their rooms.

    Names are not for anyone to harvest; ``open`` mode (the prototype) lists everyone.
    """
    require_actor(settings, caller)
    viewer = caller if settings.auth_mode is AuthMode.TOKEN else None
    users = await accounts.list_users(session, viewer=viewer, limit=limit, offset=offset)
    return [UserOut.model_validate(user) for user in users]


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: str, session: Session) -> UserOut:
    """One user's public profile."""
    return UserOut.model_validate(await accounts.get_view(session, user_id))


@router.post("/auth/register", response_model=TokenPair, status_code=201)
async def register(
    body: RegisterRequest, request: Request, session: Session, settings: SettingsDep
) -> TokenPair:
    """Create an account with a password and log it in."""
    pair = await accounts.register(
        session, username=body.username, password=body.password, jwt=settings.jwt
    )
    metrics.USERS_CREATED.inc()
    # The address that chose the password is the owner's: attacks elsewhere spare it.
    await login_guard.succeeded(
        get_context(request).limiter, username=body.username, address=client_ip(request.scope)
    )
    return pair


@router.post("/auth/login", response_model=TokenPair)
async def login(
    body: LoginRequest, request: Request, session: Session, settings: SettingsDep
) -> TokenPair:
    """Exchange a name and password for an access and a refresh token."""
    # Password guessing is limited before any hashing, in a way that spares the owner.
    limiter = get_context(request).limiter
    address = client_ip(request.scope)
    await login_guard.check_attempt(limiter, username=body.username, address=address)
    pair = await accounts.login(
        session, username=body.username, password=body.password, jwt=settings.jwt
    )
    await login_guard.succeeded(limiter, username=body.username, address=address)
    return pair


@router.post("/auth/refresh", response_model=TokenPair)
async def refresh(body: RefreshRequest, session: Session, settings: SettingsDep) -> TokenPair:
    """Rotate a refresh token into a new pair; each refresh token works once."""
    return await accounts.refresh(session, refresh_token=body.refresh_token, jwt=settings.jwt)


@router.post("/auth/logout", status_code=204, response_class=Response)
async def logout(body: RefreshRequest, session: Session, settings: SettingsDep) -> Response:
    """Sign out: revoke the refresh token and every token rotated from it (idempotent)."""
    await accounts.logout(session, refresh_token=body.refresh_token, jwt=settings.jwt)
    return Response(status_code=204)


@router.post("/auth/socket-ticket", response_model=SocketTicket)
async def socket_ticket(user: CurrentUser, request: Request, settings: SettingsDep) -> SocketTicket:
    """A one-time ticket that opens one room socket (``?ticket=``) within seconds."""
    claims = access_claims(request.scope, settings.jwt)
    assert claims is not None and claims.subject == user.id  # CurrentUser verified it
    ticket, seconds = issue_socket_ticket(settings.jwt, access=claims)
    return SocketTicket(ticket=ticket, expires_in=seconds)


@router.get("/auth/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    """The account the token speaks for."""
    return UserOut.model_validate(user)
