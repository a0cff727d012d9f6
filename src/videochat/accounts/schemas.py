"""Request and response bodies of the accounts domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# The prototype's rule: 2 to 50 letters, digits, '-' or '_'.
Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=2, max_length=50, pattern=r"^[A-Za-z0-9_-]+$"
    ),
]
Password = Annotated[str, Field(min_length=8, max_length=128)]


class UserCreate(BaseModel):
    username: Username


class RegisterRequest(BaseModel):
    username: Username
    password: Password


class LoginRequest(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=50)]
    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    joined_at: datetime
    is_guest: bool


class GuestCreated(UserOut):
    """A new guest and the token that speaks for it."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut


class SocketTicket(BaseModel):
    """A one-time credential for the room socket's URL (``?ticket=``)."""

    ticket: str
    expires_in: int
