"""What counts as the database being away (answered 503 / `unavailable`, never a crash)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError

from videochat.exceptions import is_database_outage


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("connection is closed"),
        # A reused connection left mid-statement by a restart (the chat writer's, once).
        asyncpg.InternalClientError("cannot switch to state 12; another operation is in progress"),
    ],
)
def test_a_lost_or_broken_connection_is_an_outage(error: Exception) -> None:
    assert is_database_outage(error)


def test_a_statement_that_failed_on_a_working_connection_is_not() -> None:
    duplicate = IntegrityError("INSERT", {}, asyncpg.UniqueViolationError("duplicate key"))
    assert not is_database_outage(duplicate)
    assert not is_database_outage(ValueError("bad row"))
