"""``rate="auto"``: find TMDB's rate limit from its 429s, follow it as it moves, share it.

TMDB publishes no fixed limit (its docs have said 40 and 50 requests per second), so
:class:`AdaptiveLimiter` looks for it: it starts at a safe pace, probes upward, and cuts
the pace when a 429 comes back, never going above ``max_rate``. The pace is a CUBIC
curve in time (RFC 9438), the rule TCP and botocore's adaptive retry mode use:

- no 429 yet: the pace doubles every ``doubling`` seconds from ``start_rate``;
- on a 429: the pace we had reached is *measured* as the number of our own grants in the
  second before the throttled request was sent (the server's window as our requests
  filled it: for one client the ceiling plus one, however far the pace had overshot).
  One less than that is ``w_max``, the last level known to fit. The pace drops to
  ``beta * w_max``, then follows ``w_max + c * (t - k) ** 3``: a fast, concave climb back
  to ``w_max`` (in ``k`` seconds), a long flat stretch just under it, then a convex probe
  above it, which finds a ceiling that rose. Unlike TCP's, the curve is steeper below
  ``w_max`` (``c``) than above it (``probe_c``): here a 429 costs a whole
  ``Retry-After`` (a second of nothing sent), so the known level is regained fast and
  the unknown above it is probed rarely (first 429 about 21 s after the plateau);
- a cut happens at most once per round trip: a 429 for a request sent before the last
  cut was caused by the pace the cut already answered, so it does not cut again;
- several clients sharing one ceiling converge to about equal shares without talking:
  the client sending more is more likely to take the 429, and cuts more (multiplicative
  decrease), while every client climbs back on the same curve.

``Retry-After`` is honoured for every 429 that carries it: every waiter is held until it
has passed. Without it, a cut holds every waiter for a jittered backoff that doubles
with each cut not followed by an answer.

Pacing is :class:`~tmdb_ingest.ratelimit.Pacer`'s: an absolute schedule and a window cap
of ``floor(rate)`` grants in any second, so the pace never bursts. docs/rate.md has the
measurements the constants come from.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque

from tmdb_ingest.ratelimit import Clock, Pacer, Sleep

__all__ = ["AdaptiveLimiter"]


class AdaptiveLimiter:
    """A :class:`~tmdb_ingest.ratelimit.Limiter` that finds the server's ceiling from 429s.

    ``max_rate`` bounds the pace; ``start_rate`` (default ``max_rate / 2``) is the pace
    of the first second; ``min_rate`` the lowest pace a cut may leave. ``beta`` and ``c``
    are CUBIC's decrease factor and scaling constant (time in seconds, rate in requests
    per second) for the climb back; ``probe_c`` the constant above ``w_max``;
    ``doubling`` is how many seconds the pace takes to double before the first 429.
    ``backoff`` is the first hold after a 429 without ``Retry-After`` (jittered, doubled
    per cut without an answer in between, at most ``max_backoff``).
    ``clock``, ``sleep`` and ``rng`` can be injected for deterministic tests.
    """

    def __init__(
        self,
        max_rate: float = 50.0,
        *,
        start_rate: float | None = None,
        min_rate: float = 1.0,
        beta: float = 0.8,
        c: float = 0.4,
        probe_c: float = 0.0001,
        doubling: float = 1.0,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not max_rate > 0:
            raise ValueError(f"max_rate must be > 0, got {max_rate!r}")
        start = max_rate / 2 if start_rate is None else start_rate
        if not 0 < start <= max_rate:
            raise ValueError(f"start_rate must be in (0, max_rate={max_rate:g}], got {start!r}")
        if not 0 < min_rate <= start:
            raise ValueError(f"min_rate must be in (0, start_rate={start:g}], got {min_rate!r}")
        if not 0 < beta < 1:
            raise ValueError(f"beta must be in (0, 1), got {beta!r}")
        if min(c, probe_c, doubling, backoff) <= 0 or max_backoff < backoff:
            raise ValueError("c, probe_c, doubling and backoff must be > 0, max_backoff >= backoff")
        self.max_rate = float(max_rate)
        self.start_rate = float(start)
        self.min_rate = float(min_rate)
        self.beta = beta
        self.c = c
        self.probe_c = probe_c
        self.doubling = doubling
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._clock = clock
        self._rng = rng or random.Random()
        self._pacer = Pacer(start, clock=clock, sleep=sleep)
        # Our grant times of the last few seconds: what we put into the server's window.
        self._sent: deque[float] = deque()
        self._epoch: float | None = None  # where the current curve starts (None: not begun)
        self._from = float(start)  # the pace at the epoch
        self._w_max: float | None = None  # None: no 429 yet (slow start)
        self._k = 0.0
        self._cut_at = -float("inf")
        self._streak = 0  # cuts without Retry-After and without an answer in between
        self.cuts = 0
        self.throttles = 0
        self.held_s = 0.0

    @property
    def rate(self) -> float:
        """The pace in force now, in requests per second."""
        return self._pace(self._clock())

    @property
    def w_max(self) -> float | None:
        """The last pace known to fit under the ceiling (None before the first 429)."""
        return self._w_max

    def _pace(self, now: float) -> float:
        if self._epoch is None:
            return self._from
        t = max(0.0, now - self._epoch)
        if self._w_max is None:
            pace = self._from * math.pow(2.0, t / self.doubling)
        else:
            d = t - self._k
            pace = self._w_max + (self.c if d < 0 else self.probe_c) * d**3
        return min(self.max_rate, max(self.min_rate, pace))

    async def acquire(self) -> float:
        """Wait for a slot at the current pace; return the grant time."""
        pacer = self._pacer
        if self._epoch is None:
            self._epoch = self._clock()
        pacer.rate = self._pace(self._clock())
        granted = await pacer.acquire()
        # The pace may have grown while waiting; the next slot uses the new one.
        pacer.rate = self._pace(granted)
        sent = self._sent
        sent.append(granted)
        while sent and sent[0] < granted - 5.0:
            sent.popleft()
        return granted

    def on_answer(self, sent_at: float) -> None:
        """An answer that was not a 429: the backoff after the next cut starts afresh."""
        if sent_at > self._cut_at:
            self._streak = 0

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """A 429: hold for ``retry_after`` if given; cut the pace unless already cut for it."""
        self.throttles += 1
        now = self._clock()
        if retry_after is not None:
            self.held_s += self._pacer.hold(now + retry_after)
        if sent_at <= self._cut_at:
            return  # sent before the last cut: that cut already answered this pace
        self._cut(now, sent_at)
        if retry_after is None:
            ceiling = min(self.max_backoff, self.backoff * 2.0**self._streak)
            self._streak += 1
            # Jitter, so that clients sharing the key do not come back in lockstep.
            self.held_s += self._pacer.hold(now + self._rng.uniform(ceiling / 2, ceiling))
        self._epoch = max(now, self._pacer.hold_until)

    def _cut(self, now: float, sent_at: float) -> None:
        self.cuts += 1
        self._cut_at = now
        measured = sum(1 for t in self._sent if sent_at - 1.0 < t <= sent_at)
        reached = max(self.min_rate, min(self._pace(now), measured - 1.0))
        # No "fast convergence" (RFC 9438 4.7): with probes this rare, a w_max set below
        # the level that fit would keep a lone client under its ceiling for a whole probe.
        self._w_max = reached
        self._from = max(self.min_rate, self.beta * reached)
        self._k = (max(0.0, self._w_max - self._from) / self.c) ** (1.0 / 3.0)
        self._pacer.rate = self._from
