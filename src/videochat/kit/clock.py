"""Time in one place: aware UTC datetimes, ISO 8601 with a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


# The last moment formatted and its text: a batch of chat messages shares one time, and
# each message's frame formats it (one tuple, so a thread reading it never sees a mix).
_last: tuple[datetime | None, str] = (None, "")


def isoformat(moment: datetime) -> str:
    """ISO 8601 in UTC with a trailing ``Z`` (the same text pydantic produces)."""
    global _last
    last, text = _last
    if moment is last:
        return text
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    text = aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    _last = (moment, text)
    return text
