"""Rate control: requests are paced on an absolute schedule, capped per one-second window,
and paused together when TMDB answers 429.

Why not a plain ``aiolimiter.AsyncLimiter(1, 1 / rate)``: each waiter is woken a little
late and the lateness adds up, so it delivers 93 to 96% of the rate (measured in
``benchmarks/``, where it runs side by side with this one as the baseline). A bucket with
a larger capacity lets bursts of up to capacity + rate through in one second, which
breaks TMDB's ceiling. :class:`RateLimiter` gives slot ``k`` the time
``start + k / rate``, so a late wake-up is given back on the next slot, and it keeps the
grant times of the last ``rate`` requests so that no one-second window ever holds more
than ``rate`` of them, however late or bunched the wake-ups are.

After a 429, :meth:`RateLimiter.pause` holds every waiter until ``Retry-After`` has
passed (or a backoff when the header is absent), and the pace drops a little and then
recovers (additive increase, multiplicative decrease), so a server whose real limit is
lower than ``rate`` is followed instead of hammered.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

__all__ = ["Limiter", "Pacer", "RateLimiter", "make_limiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Every `rate` + 1 grants span at least one second plus this margin, so that
# small differences in how long each request takes to reach the wire cannot squeeze
# rate + 1 of them into one second as seen by the server.
_WINDOW_MARGIN = 0.02


@runtime_checkable
class Limiter(Protocol):
    """Rate control as the TMDB client uses it; plug your own into ``ingest(limiter=...)``.

    The client calls :meth:`acquire` before every request and sends it at once; then
    exactly one of :meth:`on_answer` (any answer but 429, or a transport error) or
    :meth:`on_throttle` (a 429), with the time :meth:`acquire` returned, so that a
    limiter can tell throttles of requests sent before its last cut from new ones.

    Optional: a limiter with a ``stated_limit(limit: float)`` method is also told the
    limit a 429's body states (TMDB's code 25: "... over the allowed limit of (40).",
    the server's total for the key), just before :meth:`on_throttle` for that 429.
    """

    @property
    def rate(self) -> float:
        """The pace in force now, in requests per second."""
        ...

    async def acquire(self) -> float:
        """Wait for a slot; return the grant time on the limiter's clock."""
        ...

    def on_answer(self, sent_at: float) -> None:
        """A request granted at ``sent_at`` was answered with anything but a 429."""
        ...

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """A request granted at ``sent_at`` got a 429; ``retry_after`` in seconds, if sent.

        Holds every waiter until ``retry_after`` has passed, or for a jittered backoff
        when the header was absent.
        """
        ...


def make_limiter(
    rate: float | str,
    *,
    max_rate: float = 50.0,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> Limiter:
    """The limiter for a setting: a fixed ``rate``, or ``"auto"`` (at most ``max_rate``)."""
    if rate == "auto":
        # Imported here: the adaptive controller is built on this module's Pacer.
        from tmdb_ingest.adaptive import AdaptiveLimiter

        return AdaptiveLimiter(max_rate, clock=clock, sleep=sleep)
    return RateLimiter(float(rate), clock=clock, sleep=sleep)


class Pacer:
    """Grants on an absolute schedule at ``rate``, at most ``window_cap`` per second, and
    none before a hold ends: the pacing that :class:`RateLimiter` and
    :class:`~tmdb_ingest.adaptive.AdaptiveLimiter` share.

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
        self._cap = window_cap if window_cap is not None else _cap_for(rate)
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
            self._cap = _cap_for(rate)

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


def _cap_for(rate: float) -> int:
    return max(1, math.floor(rate))


class RateLimiter:
    """Grant at most ``rate`` acquisitions per second, evenly spaced, with a shared pause.

    ``clock`` and ``sleep`` can be injected for deterministic tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        min_rate_share: float = 0.25,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self.max_rate = float(rate)
        self._min_rate = max(0.1, rate * min_rate_share)
        self._clock = clock
        # The window cap stays at the configured rate while the pace dips after a 429.
        self._pacer = Pacer(rate, window_cap=_cap_for(rate), clock=clock, sleep=sleep)
        self.granted = 0
        self.paused_s = 0.0

    @property
    def rate(self) -> float:
        """The pace in force now (lower than ``max_rate`` for a while after a 429)."""
        return self._pacer.rate

    async def acquire(self) -> float:
        """Wait for the next slot; return its grant time. First come, first served."""
        now = await self._pacer.acquire()
        self.granted += 1
        rate = self._pacer.rate
        if rate < self.max_rate:
            # additive increase: back to full pace about ten seconds after one 429
            self._pacer.rate = min(self.max_rate, rate + self.max_rate / (50.0 * rate))
        return now

    def on_answer(self, sent_at: float) -> None:
        """Nothing to learn from an answer at a fixed rate."""

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """Pause everyone for ``retry_after``, or about a second, jittered, when absent."""
        # Jitter, so that clients sharing the key do not come back in lockstep.
        self.pause(retry_after if retry_after is not None else 1.0 + random.random())

    def pause(self, seconds: float) -> None:
        """Hold every waiter for ``seconds`` from now, and slow the pace (a 429 arrived)."""
        self.paused_s += self._pacer.hold(self._clock() + max(0.0, seconds))
        self._pacer.rate = max(self._min_rate, self._pacer.rate * 0.8)

    async def __aenter__(self) -> RateLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None
