"""The tests' virtual clock itself (tests/virtual_clock.py): jumps, manual steps, windows."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import busiest_window
from tests.virtual_clock import virtual_loop


@pytest.mark.virtual_clock
async def test_auto_mode_jumps_to_each_timer_exactly() -> None:
    """An hour's sleep costs nothing and moves the loop's clock by exactly an hour."""
    loop = virtual_loop()
    start = loop.time()
    await asyncio.sleep(3600)
    assert loop.time() == start + 3600
    await asyncio.wait_for(asyncio.sleep(1), timeout=2)
    assert loop.time() == start + 3601


@pytest.mark.virtual_clock(auto=False)
async def test_manual_mode_moves_only_by_advance_and_waits_for_woken_sleepers() -> None:
    """A sleeper wakes only once advance() reaches its time, and advance() returns only
    after it has slept again, at exactly its wake-up times."""
    loop = virtual_loop()
    start = loop.time()
    woke: list[float] = []

    async def sleeper() -> None:
        for _ in range(3):
            await loop.sleep(10)
            woke.append(loop.time() - start)
            await asyncio.to_thread(sum, range(1000))  # real work on a thread meanwhile

    task = asyncio.create_task(sleeper())
    await loop.until_sleeping(1)
    await loop.advance(9)
    assert woke == []
    assert loop.time() == start + 9
    await loop.advance(16)
    assert woke == [10, 20]
    await loop.advance(5)
    assert woke == [10, 20, 30]
    await task


def test_busiest_window_is_half_open() -> None:
    """A time exactly one window after another counts in the next window."""
    assert busiest_window([0.0, 0.5, 1.0, 1.5]) == 2
    assert busiest_window([0.0, 0.25, 0.5, 0.99]) == 4
    assert busiest_window([]) == 0
