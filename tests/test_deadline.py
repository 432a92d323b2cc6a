"""The time budget on the event loop's clock: marks, measured reserves, early stops."""

from __future__ import annotations

import pytest

from tests.virtual_clock import VirtualClock
from tmdb_ingest.run.deadline import Deadline

# The deadline is arithmetic on a clock: the tests' virtual clock, on its own (no loop).


def test_without_a_budget_there_are_no_marks() -> None:
    """No budget: ids are taken until stop() is called; nothing is ever cancelled by time."""
    clock = VirtualClock(500.0)
    deadline = Deadline(None, clock=clock)
    assert deadline.end is None
    assert deadline.cancel_at is None
    assert deadline.stop_taking_at is None
    clock.now += 10**6
    assert deadline.taking()
    deadline.stop("signal")
    assert not deadline.taking()
    assert deadline.reason == "signal"


def test_before_any_measurement_the_configured_bounds_apply() -> None:
    """Unmeasured: the flush keeps 10% of the budget (1..max_flush), requests max_request."""
    clock = VirtualClock(500.0)
    deadline = Deadline(900, clock=clock, max_request=20.0, max_flush=10.0)
    assert deadline.end == 1400.0
    assert deadline.cancel_at == pytest.approx(1400.0 - 10.0)
    assert deadline.stop_taking_at == pytest.approx(1400.0 - 10.0 - 20.0)


def test_reserves_shrink_to_what_the_run_measures() -> None:
    """Measured 150 ms requests and 80 ms uploads leave well under two seconds in reserve."""
    clock = VirtualClock(500.0)
    deadline = Deadline(900, clock=clock, max_request=20.0, max_flush=10.0)
    for _ in range(50):
        deadline.request_took(0.15)
        deadline.upload_took(0.08)
    assert deadline.in_flight_reserve() == pytest.approx(0.15 * 1.5 + 0.25)
    assert deadline.flush_reserve() == pytest.approx(3 * 0.08 + 0.5)
    assert deadline.end - deadline.stop_taking_at < 2.0  # type: ignore[operator]


def test_a_slow_outlier_is_bounded_by_the_configured_timeouts() -> None:
    """One 60 s request cannot make the reserve longer than the request timeout."""
    deadline = Deadline(900, clock=VirtualClock(500.0), max_request=20.0, max_flush=10.0)
    deadline.request_took(60.0)
    deadline.upload_took(60.0)
    assert deadline.in_flight_reserve() == 20.0
    assert deadline.flush_reserve() == 10.0


def test_short_budgets_keep_at_most_a_third_for_requests_in_flight() -> None:
    """A 10 s budget never spends its whole time waiting for a 20 s timeout."""
    deadline = Deadline(10, clock=VirtualClock(500.0), max_request=20.0)
    assert deadline.in_flight_reserve() == pytest.approx(3.0)
    assert deadline.stop_taking_at > deadline.start  # type: ignore[operator]


def test_stop_moves_the_marks_and_tells_the_listeners() -> None:
    """stop(grace) ends taking now and cancels after the grace; the first reason is kept."""
    clock = VirtualClock(500.0)
    deadline = Deadline(900, clock=clock)
    seen: list[float | None] = []
    unsubscribe = deadline.on_change(lambda: seen.append(deadline.cancel_at))
    clock.now += 100
    deadline.stop("SIGINT", grace=2.0)
    deadline.stop("SIGTERM", grace=5.0)  # later than the first: changes nothing
    assert deadline.reason == "SIGINT"
    assert deadline.cancel_at == pytest.approx(602.0)
    assert not deadline.taking()
    assert seen == [pytest.approx(602.0)]
    unsubscribe()
    deadline.stop("again", grace=0.0)
    assert len(seen) == 1


def test_a_faster_upload_moves_the_cancel_mark_later() -> None:
    """The hard stop follows the measured flush reserve, and listeners hear of it."""
    clock = VirtualClock(500.0)
    deadline = Deadline(100, clock=clock, max_flush=10.0)
    seen: list[float | None] = []
    deadline.on_change(lambda: seen.append(deadline.cancel_at))
    before = deadline.cancel_at
    deadline.upload_took(0.1)
    assert deadline.cancel_at > before  # type: ignore[operator]
    assert seen == [deadline.cancel_at]
