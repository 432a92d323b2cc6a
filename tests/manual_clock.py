"""A clock that moves only when a test says so, for code that sleeps in background tasks.

``clock()`` is the monotonic time, ``clock.wall()`` the matching UTC wall time, and
``clock.sleep`` parks the calling task until ``advance`` reaches its wake-up time. Real
I/O (HTTP to moto) still runs on the real loop: ``advance`` wakes sleepers one at a
time, in time order, and waits until each has parked again or finished before moving on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools

# A safety net against a test that hangs, not a timing assertion: a woken task parks
# again after a few local HTTP requests, far within this.
_PARK_TIMEOUT = 20.0


class ManualClock:
    """Monotonic and wall time under a test's control."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._start = start
        self._wall0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
        self._sleepers: list[tuple[float, int, asyncio.Future[None], asyncio.Task[object]]] = []
        self._seq = itertools.count()
        self._parked: dict[asyncio.Task[object], asyncio.Event] = {}
        self._changed: asyncio.Condition | None = None

    def __call__(self) -> float:
        return self.now

    def wall(self, offset: float = 0.0) -> dt.datetime:
        """The wall time now, ``offset`` seconds off (a machine whose clock is wrong)."""
        return self._wall0 + dt.timedelta(seconds=self.now - self._start + offset)

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._sleepers, (self.now + max(0.0, seconds), next(self._seq), future, task)
        )
        if task in self._parked:
            self._parked[task].set()
        async with self._condition():
            self._condition().notify_all()
        await future

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    @property
    def sleeping(self) -> int:
        """How many tasks are asleep on this clock."""
        return sum(1 for _, _, future, _ in self._sleepers if not future.done())

    async def until_sleeping(self, count: int) -> None:
        """Wait (doing real I/O meanwhile) until ``count`` tasks are asleep on this clock."""
        async with self._condition():
            await asyncio.wait_for(
                self._condition().wait_for(lambda: self.sleeping >= count), _PARK_TIMEOUT
            )

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper due on the way, in order."""
        target = self.now + seconds
        await self._let_run()
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future, task = heapq.heappop(self._sleepers)
            if future.done():  # its task was cancelled while asleep
                continue
            self.now = max(self.now, when)
            parked = self._parked[task] = asyncio.Event()
            future.set_result(None)
            waiter = asyncio.ensure_future(parked.wait())
            try:
                await asyncio.wait(
                    {waiter, task}, timeout=_PARK_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
                del self._parked[task]
            await self._let_run()
        self.now = max(self.now, target)

    async def _let_run(self) -> None:
        """Let tasks that are ready (not sleeping on this clock) take their turn."""
        for _ in range(5):
            await asyncio.sleep(0)
