"""The rate limiter on a fake clock: deterministic, no real sleeping."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random

import pytest

from tmdb_ingest.fetch.rate.fixed import RateLimiter
from tmdb_ingest.fetch.rate.pacer import _WINDOW_MARGIN


class FakeClock:
    """A clock that only moves when the limiter sleeps, waking each sleeper late."""

    def __init__(self, lateness: float = 0.0, seed: int = 0) -> None:
        self.now = 100.0
        self.lateness = lateness
        self.rng = random.Random(seed)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + self.rng.uniform(0, self.lateness)
        await asyncio.sleep(0)


def busiest_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    return max(bisect.bisect_left(times, t + window) - i for i, t in enumerate(times))


async def grant_times(
    limiter: RateLimiter, clock: FakeClock, n: int, workers: int = 10
) -> list[float]:
    times: list[float] = []
    remaining = iter(range(n))

    async def worker() -> None:
        for _ in remaining:
            await limiter.acquire()
            times.append(clock())

    await asyncio.gather(*(worker() for _ in range(workers)))
    return times


async def test_first_second_has_no_burst() -> None:
    """A fresh limiter spaces its first grants by 1/rate instead of letting a burst through."""
    clock = FakeClock()
    limiter = RateLimiter(40, clock=clock, sleep=clock.sleep)
    times = await grant_times(limiter, clock, 80)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 40 - 1e-9
    assert busiest_window(times) <= 40


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_late_wakeups_neither_break_the_ceiling_nor_lose_throughput(seed: int) -> None:
    """With every wake-up up to 5 ms late, no second holds more than `rate` grants and 2,000
    grants still take within 1% of the ideal 2000/rate seconds plus the window margin (the
    safety gap that keeps `rate + 1` requests out of any one second as the server sees it)."""
    clock = FakeClock(lateness=0.005, seed=seed)
    limiter = RateLimiter(40, clock=clock, sleep=clock.sleep)
    start = clock()
    times = await grant_times(limiter, clock, 2000)
    assert busiest_window(times) <= 40
    elapsed = times[-1] - start
    assert elapsed <= (2000 / 40) * (1 + _WINDOW_MARGIN + 0.01)


async def test_pause_holds_every_waiter() -> None:
    """After pause(2), no grant happens until two seconds have passed, and the pace drops."""
    clock = FakeClock()
    limiter = RateLimiter(40, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    paused_at = clock()
    limiter.pause(2.0)
    assert limiter.rate < 40
    times = await grant_times(limiter, clock, 5)
    assert min(times) >= paused_at + 2.0


async def test_rate_recovers_after_a_throttle() -> None:
    """The pace lowered by a 429 climbs back to the configured rate as grants succeed."""
    clock = FakeClock()
    limiter = RateLimiter(40, clock=clock, sleep=clock.sleep)
    limiter.pause(0.0)
    assert limiter.rate == pytest.approx(32.0)
    await grant_times(limiter, clock, 600)
    assert limiter.rate == pytest.approx(40.0)


async def test_idle_time_is_not_saved_up_as_a_burst() -> None:
    """After ten idle seconds the next grants are still spaced by about 1/rate."""
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    await grant_times(limiter, clock, 5)
    clock.now += 10.0
    times = await grant_times(limiter, clock, 10)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.5 / 10 - 1e-9
    assert busiest_window(times) <= 10


def test_rejects_a_rate_that_is_not_positive() -> None:
    """A zero rate is refused with a message naming it."""
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)
