"""kit.window: the moving window a socket keeps for its own frames and signal bytes."""

from __future__ import annotations

from videochat.kit.window import MovingWindow


def test_a_window_takes_up_to_its_limit_and_a_refusal_counts_nothing() -> None:
    window = MovingWindow(3, 10)
    assert [window.take(now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert window.span(now=3) == (0, 3)


def test_hits_leave_the_window_once_it_has_moved_past_them() -> None:
    window = MovingWindow(2, 10)
    assert window.take(now=0) and window.take(now=5)
    assert not window.take(now=9.9)
    assert window.take(now=10.5)  # the hit at 0 has left
    assert not window.take(now=10.6)
    assert window.span(now=10.6) == (5, 2)


def test_a_hit_at_the_windows_start_still_counts_as_in_limits() -> None:
    window = MovingWindow(1, 10)
    assert window.take(now=0)
    assert not window.take(now=10)
    assert window.take(now=10.001)


def test_costs_are_counted_in_units() -> None:
    window = MovingWindow(10, 60)
    assert window.take(6, now=0)
    assert not window.take(5, now=1)
    assert window.take(4, now=2)
    assert window.span(now=2) == (0, 10)
    assert window.span(now=61) == (2, 4)  # the hit at 0 has left
    assert window.span(now=62.5) == (62.5, 0)


def test_a_window_is_idle_once_its_hits_have_left() -> None:
    window = MovingWindow(5, 10)
    assert window.idle(now=0)
    window.take(now=0)
    assert not window.idle(now=5)
    assert window.idle(now=10.1)
