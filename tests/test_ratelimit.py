"""The fixed rate limiter on the loop's virtual clock: deterministic, no real sleeping."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.helpers import busiest_window
from tests.virtual_clock import virtual_loop
from tmdb_ingest.fetch.rate.fixed import RateLimiter
from tmdb_ingest.fetch.rate.pacer import _WINDOW_MARGIN

pytestmark = pytest.mark.virtual_clock


def on_loop_clock(rate: float) -> RateLimiter:
    """A limiter that reads the (virtual) loop's clock and sleeps on it."""
    return RateLimiter(rate, clock=virtual_loop().time, sleep=asyncio.sleep)


async def grant_times(limiter: RateLimiter, n: int, workers: int = 10) -> list[float]:
    times: list[float] = []
    remaining = iter(range(n))

    async def worker() -> None:
        for _ in remaining:
            await limiter.acquire()
            times.append(virtual_loop().time())

    await asyncio.gather(*(worker() for _ in range(workers)))
    return times


async def test_first_second_has_no_burst() -> None:
    """A fresh limiter spaces its first grants by 1/rate instead of letting a burst through."""
    limiter = on_loop_clock(40)
    times = await grant_times(limiter, 80)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 40 - 1e-9
    assert busiest_window(times) <= 40


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_late_wakeups_neither_break_the_ceiling_nor_lose_throughput(seed: int) -> None:
    """With every wake-up up to 5 ms late, no second holds more than `rate` grants and 2,000
    grants still take within 1% of the ideal 2000/rate seconds plus the window margin (the
    safety gap that keeps `rate + 1` requests out of any one second as the server sees it)."""
    virtual_loop().clock.wake_late(0.005, seed=seed)
    limiter = on_loop_clock(40)
    start = virtual_loop().time()
    times = await grant_times(limiter, 2000)
    assert busiest_window(times) <= 40
    elapsed = times[-1] - start
    assert elapsed <= (2000 / 40) * (1 + _WINDOW_MARGIN + 0.01)


async def test_pause_holds_every_waiter() -> None:
    """After pause(2), no grant happens until two seconds have passed, and the pace drops."""
    limiter = on_loop_clock(40)
    await limiter.acquire()
    paused_at = virtual_loop().time()
    limiter.pause(2.0)
    assert limiter.rate < 40
    times = await grant_times(limiter, 5)
    assert min(times) >= paused_at + 2.0


async def test_rate_recovers_after_a_throttle() -> None:
    """The pace lowered by a 429 climbs back to the configured rate as grants succeed."""
    limiter = on_loop_clock(40)
    limiter.pause(0.0)
    assert limiter.rate == pytest.approx(32.0)
    await grant_times(limiter, 600)
    assert limiter.rate == pytest.approx(40.0)


async def test_idle_time_is_not_saved_up_as_a_burst() -> None:
    """After ten idle seconds the next grants are still spaced by about 1/rate."""
    limiter = on_loop_clock(10)
    await grant_times(limiter, 5)
    await asyncio.sleep(10.0)
    times = await grant_times(limiter, 10)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.5 / 10 - 1e-9
    assert busiest_window(times) <= 10


def test_rejects_a_rate_that_is_not_positive() -> None:
    """A zero rate is refused with a message naming it."""
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)
