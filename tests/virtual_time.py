"""An event loop on virtual time: ``loop.time()`` jumps to the next timer instead of waiting.

Time-dependent logic (the deadline, the pool's hard stop, retry waits) runs on the event
loop's clock, so on this loop a run with a 60 s budget and 150 ms requests takes
milliseconds, and every mark is exact and repeatable: no sleeps, no timing assertions.
Only in-memory work may run on it (no sockets, no threads): when nothing is scheduled and
nothing is ready the loop would wait forever, and it says so instead.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _Clock:
    now = 1000.0


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        events: list[Any] = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("virtual time: nothing is scheduled, the loop would hang")
        self._clock.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose clock advances only when every task waits for a timer."""

    def __init__(self) -> None:
        self.clock = _Clock()
        super().__init__(selector=_VirtualSelector(self.clock))

    def time(self) -> float:
        return self.clock.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh :class:`VirtualTimeLoop`."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
