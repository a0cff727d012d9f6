"""Times as the wire and the API show them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from videochat.kit.clock import isoformat


def test_isoformat_is_utc_with_a_z_whatever_the_zone() -> None:
    moment = datetime(2026, 12, 5, 9, 30, 1, 250000, tzinfo=UTC)
    assert isoformat(moment) == "2026-12-05T09:30:01.250000Z"
    assert isoformat(moment.replace(tzinfo=None)) == "2026-12-05T09:30:01.250000Z"
    paris = moment.astimezone(timezone(timedelta(hours=1)))
    assert isoformat(paris) == "2026-12-05T09:30:01.250000Z"


def test_the_last_moment_kept_never_answers_for_another() -> None:
    """The last moment's text is kept (a batch of messages shares one time): a second
    moment, an equal one, and the first again each get their own text."""
    first = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    second = first + timedelta(microseconds=1)
    assert isoformat(first) == isoformat(first) == "2026-12-05T09:00:00Z"
    assert isoformat(second) == "2026-12-05T09:00:00.000001Z"
    naive_equal = first.replace(tzinfo=None)
    assert isoformat(naive_equal) == "2026-12-05T09:00:00Z"
    shifted = first.astimezone(timezone(timedelta(hours=-5)))
    assert isoformat(shifted) == "2026-12-05T09:00:00Z"
    assert isoformat(second) == "2026-12-05T09:00:00.000001Z"
