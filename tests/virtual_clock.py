"""The one virtual clock of the tests: the event loop's own clock, made virtual.

The package reads time from ``loop.time()`` and waits with ``asyncio.sleep`` (or with
``clock``/``sleep`` hooks that default to them), so a test runs its code on a
:class:`VirtualTimeLoop`, whose ``time()`` is a :class:`VirtualClock`: every timer, the
package's and its libraries', is on virtual time, and every mark is exact and repeatable.
No sleeps, no timing assertions. The loop is chosen by a marker (tests/conftest.py)::

    @pytest.mark.virtual_clock              # time jumps (auto)
    @pytest.mark.virtual_clock(auto=False)  # time moves when the test says (manual)

or, for a synchronous test, with :func:`run_virtual`.

Two ways for time to move:

- **auto** (the default): when every task waits for a timer, the clock jumps to the next
  one, so a run with a 60 s budget takes milliseconds. Only in-memory work may run (no
  sockets, no threads): while the loop waits for them the clock would jump. ``lateness``
  makes each jump land up to that many seconds late, as a busy loop wakes late.
- **manual**: real I/O runs (HTTP to moto, threads), and the clock moves only by
  ``await loop.advance(seconds)``, which steps to each timer due on the way in order; a
  task that sleeps with ``loop.sleep`` (pass it as the code's ``sleep`` hook) is then
  waited for until it sleeps again or ends, however long its I/O takes.

:class:`VirtualClock` on its own is also the clock for code that takes a ``clock``
callable outside any loop (the deadline's arithmetic).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import random
import selectors
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Safety nets against a test that hangs, not timing assertions (real seconds): a woken
# task sleeps again after a few local HTTP requests, far within this.
_PARK_TIMEOUT = 20.0
# In manual mode the real select() returns at least this often, to notice nothing.
_MANUAL_POLL = 1.0


class VirtualClock:
    """Virtual monotonic seconds (``clock()``, like ``loop.time()``) and the matching wall time.

    ``now`` moves only when a loop on this clock jumps or advances, or when a test sets it.
    """

    def __init__(self, start: float = 1000.0, *, lateness: float = 0.0, seed: int = 0) -> None:
        self.now = start
        self.start = start
        self.lateness = lateness
        self._rng = random.Random(seed)
        self._wall0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> float:
        return self.now

    def wall(self, offset: float = 0.0) -> dt.datetime:
        """The UTC wall time now, ``offset`` seconds off (a machine whose clock is wrong)."""
        return self._wall0 + dt.timedelta(seconds=self.now - self.start + offset)

    def wake_late(self, lateness: float, *, seed: int = 0) -> None:
        """From now on, each jump of an auto loop lands up to ``lateness`` s late (seeded)."""
        self.lateness = lateness
        self._rng = random.Random(seed)

    def _jump(self, seconds: float) -> None:
        late = self._rng.uniform(0.0, self.lateness) if self.lateness else 0.0
        self.now += seconds + late


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Polls without blocking and moves the clock instead (auto), or blocks for real I/O
    (manual)."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if not self._loop.auto:
            real = _MANUAL_POLL if timeout is None else min(timeout, _MANUAL_POLL)
            found: list[Any] = super().select(real)
            return found
        events: list[Any] = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("virtual time: nothing is scheduled, the loop would hang")
        self._loop.clock._jump(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose ``time()`` is :attr:`clock` (see the module's docstring)."""

    def __init__(self, clock: VirtualClock | None = None, *, auto: bool = True) -> None:
        self.clock = clock or VirtualClock()
        self.auto = auto
        self._virtual_timers: list[asyncio.TimerHandle] = []
        self._sleepers: dict[asyncio.Task[Any], float] = {}
        self._parked: dict[asyncio.Task[Any], asyncio.Event] = {}
        self._sleeping_changed: asyncio.Event | None = None
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self.clock.now

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        # Every timer passes here (call_later too): advance() steps through them. Only in
        # manual mode: auto mode never steps, and a long simulation schedules 10^5 timers.
        handle = super().call_at(when, callback, *args, context=context)
        if not self.auto:
            heapq.heappush(self._virtual_timers, handle)
        return handle

    def pending_timers(self) -> int:
        """Timers scheduled and not yet due or cancelled."""
        return sum(
            1 for h in self._virtual_timers if not h.cancelled() and h.when() > self.clock.now
        )

    # -- manual mode ------------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``, telling :meth:`advance` that the calling task is parked."""
        task = asyncio.current_task()
        assert task is not None
        self._sleepers[task] = self.clock.now + max(0.0, seconds)
        if task in self._parked:
            self._parked[task].set()
        self._changed().set()
        try:
            await asyncio.sleep(seconds)
        finally:
            self._sleepers.pop(task, None)

    @property
    def sleeping(self) -> int:
        """How many tasks are asleep in :meth:`sleep`."""
        return len(self._sleepers)

    async def until_sleeping(self, count: int) -> None:
        """Wait (real I/O running meanwhile) until ``count`` tasks are asleep in :meth:`sleep`."""
        while self.sleeping < count:
            changed = self._changed()
            changed.clear()
            await _within_real_time(self, changed.wait(), f"{count} tasks asleep")

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (manual mode), stepping to each timer due on
        the way; each task woken from :meth:`sleep` is waited for until it sleeps again or
        ends."""
        if self.auto:
            raise RuntimeError("advance() is for manual mode; in auto mode, asyncio.sleep")
        target = self.clock.now + seconds
        await _let_run()
        while (when := self._next_timer()) is not None and when <= target:
            self.clock.now = max(self.clock.now, when)
            woken = [t for t, wake in self._sleepers.items() if wake <= self.clock.now]
            for task in woken:
                self._parked[task] = asyncio.Event()
            try:
                await _let_run()
                for task in woken:
                    await _within_real_time(
                        self, _parked_or_done(self._parked[task], task), "a woken task to park"
                    )
            finally:
                for task in woken:
                    del self._parked[task]
            await _let_run()
        self.clock.now = max(self.clock.now, target)
        await _let_run()

    def _next_timer(self) -> float | None:
        timers = self._virtual_timers
        while timers and (timers[0].cancelled() or timers[0].when() <= self.clock.now):
            heapq.heappop(timers)  # fired (the loop ran since it fell due) or cancelled
        return timers[0].when() if timers else None

    def _changed(self) -> asyncio.Event:
        if self._sleeping_changed is None:
            self._sleeping_changed = asyncio.Event()
        return self._sleeping_changed


async def _let_run() -> None:
    """Let tasks that are ready take their turn."""
    for _ in range(5):
        await asyncio.sleep(0)


async def _parked_or_done(parked: asyncio.Event, task: asyncio.Task[Any]) -> None:
    waiter = asyncio.ensure_future(parked.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _within_real_time(loop: VirtualTimeLoop, aw: Coroutine[Any, Any, Any], what: str) -> None:
    """Await ``aw``, failing after _PARK_TIMEOUT real seconds (loop timers are virtual)."""
    task = asyncio.ensure_future(aw)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        loop.call_soon_threadsafe(task.cancel)

    timer = threading.Timer(_PARK_TIMEOUT, expire)
    timer.daemon = True
    timer.start()
    try:
        await task
    except asyncio.CancelledError:
        if expired.is_set():
            raise TimeoutError(f"virtual time: waited {_PARK_TIMEOUT} s for {what}") from None
        raise
    finally:
        timer.cancel()


def virtual_loop() -> VirtualTimeLoop:
    """The running loop, which must be a :class:`VirtualTimeLoop`."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        raise RuntimeError("not on virtual time: mark the test @pytest.mark.virtual_clock")
    return loop


def run_virtual(coro: Coroutine[Any, Any, T], clock: VirtualClock | None = None) -> T:
    """Run ``coro`` to completion on a fresh :class:`VirtualTimeLoop` in auto mode."""
    loop = VirtualTimeLoop(clock)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
