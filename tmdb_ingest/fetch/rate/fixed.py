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
import random
import time

from tmdb_ingest.fetch.rate.pacer import Clock, Pacer, Sleep, cap_for

__all__ = ["RateLimiter"]


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
        self._pacer = Pacer(rate, window_cap=cap_for(rate), clock=clock, sleep=sleep)
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
