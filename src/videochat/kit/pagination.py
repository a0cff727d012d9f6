"""Query parameters shared by list endpoints, bounded so the database never overflows."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

# SQLite and PostgreSQL integers stop at 2**63 - 1: an unbounded offset or cursor from
# a client would be a 500 instead of a 422.
MAX_OFFSET = 1_000_000
MAX_ID = 2**62

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]
MessageCursor = Annotated[int | None, Query(ge=1, le=MAX_ID, description="a message id")]
