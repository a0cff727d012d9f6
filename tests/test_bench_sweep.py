"""The fan-out benchmark's capacity sweep: where its bisection goes next (bench/fanout.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from bench.fanout import refine_rate


def _step(rate: float, p99_ms: float) -> dict[str, Any]:
    return {"target_per_s": rate, "p99_ms": p99_ms, "lost": 0, "unexpected_closes": 0}


def test_the_bisection_goes_between_the_best_good_step_and_the_nearest_failed_one() -> None:
    steps = [_step(57_851, 3.3), _step(80_991, 17.7), _step(113_388, 79.4), _step(158_743, 128.6)]

    assert refine_rate(steps) == pytest.approx(math.sqrt(80_991 * 113_388))


def test_the_bisection_stops_within_ten_per_cent_instead_of_repeating_a_step() -> None:
    # A run's SQLite sweep: 123,338/s had been tried (between 113,388 and 134,162); the
    # next bisection chose it again, and again, until --refine ran out.
    steps = [
        _step(113_388, 42.4),
        _step(158_743, 229.5),
        _step(134_162, 121.3),
        _step(123_338, 64.2),
    ]

    assert refine_rate(steps) is None


def test_a_step_that_lost_deliveries_counts_as_failed() -> None:
    steps = [_step(40_000, 5.0), {**_step(80_000, 5.0), "lost": 3}]

    assert refine_rate(steps) == pytest.approx(math.sqrt(40_000 * 80_000))


def test_no_good_step_or_no_failed_one_above_it_leaves_nothing_to_bisect() -> None:
    assert refine_rate([_step(2_000, 120.0)]) is None
    assert refine_rate([_step(2_000, 1.0), _step(4_000, 2.0)]) is None
