"""The pacing every limiter shares: grants on an absolute schedule, capped per one-second
window, none before a hold ends.

Slot ``k`` is given the time ``start + k / rate``, so a late wake-up is given back on the
next slot, and the grant times of the last second are kept so that no one-second window
ever holds more than the cap, however late or bunched the wake-ups are.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["Clock", "Pacer", "Sleep", "cap_for"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Every `rate` + 1 grants span at least one second plus this margin, so that
# small differences in how long each request takes to reach the wire cannot squeeze
# rate + 1 of them into one second as seen by the server.
_WINDOW_MARGIN = 0.02


class Pacer:
    """Grants on an absolute schedule at ``rate``, at most ``window_cap`` per second, and
    none before a hold ends: the pacing that :class:`~tmdb_ingest.fetch.rate.fixed.RateLimiter` and
    :class:`~tmdb_ingest.fetch.rate.adaptive.AdaptiveLimiter` share.

    ``rate`` can be changed at any time (the next slot keeps its time; later slots follow
    the new rate). ``window_cap`` is ``floor(rate)`` unless given: with ``fixed_cap`` the
    cap stays at the value given to the constructor whatever the rate becomes.
    """

    def __init__(
        self,
        rate: float,
        *,
        window_cap: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self._rate = float(rate)
        self._fixed_cap = window_cap
        self._cap = window_cap if window_cap is not None else cap_for(rate)
        self._clock = clock
        self._sleep = sleep
        self._next_slot: float | None = None
        # Grant times of the last second (plus margin): at most the largest cap ever used.
        self._grants: deque[float] = deque()
        self.hold_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def rate(self) -> float:
        """The pace, in grants per second."""
        return self._rate

    @rate.setter
    def rate(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self._rate = float(rate)
        if self._fixed_cap is None:
            self._cap = cap_for(rate)

    @property
    def window_cap(self) -> int:
        """The most grants allowed in any one second (plus the margin)."""
        return self._cap

    def hold(self, until: float) -> float:
        """Grant nothing before ``until`` (clock time); return the seconds this added."""
        now = self._clock()
        if until <= self.hold_until:
            return 0.0
        added = until - max(now, self.hold_until)
        self.hold_until = until
        return max(0.0, added)

    def _earliest(self, now: float) -> float:
        earliest = max(self._scheduled(now), self.hold_until)
        grants = self._grants
        while grants and grants[0] + 1.0 + _WINDOW_MARGIN <= now:
            grants.popleft()
        if len(grants) >= self._cap:
            earliest = max(earliest, grants[-self._cap] + 1.0 + _WINDOW_MARGIN)
        return earliest

    def _scheduled(self, now: float) -> float:
        # A slot that was missed by a late wake-up keeps its time (the lateness is given
        # back on the following slots), but by no more than half an interval: after idling
        # the schedule restarts near `now`, so idle time is never saved up as a burst.
        if self._next_slot is None:
            return now
        return max(self._next_slot, now - 0.5 / self._rate)

    async def acquire(self) -> float:
        """Wait for the next slot; return its grant time. First come, first served."""
        async with self._lock:
            while True:
                now = self._clock()
                earliest = self._earliest(now)
                if earliest <= now:
                    break
                await self._sleep(earliest - now)
            # The next slot follows this one's *scheduled* time, not the late wake-up.
            self._next_slot = self._scheduled(now) + 1.0 / self._rate
            self._grants.append(now)
            return now


def cap_for(rate: float) -> int:
    """The window cap for a pace: whole requests per second, at least one."""
    return max(1, math.floor(rate))
