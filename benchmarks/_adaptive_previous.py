"""The ``rate="auto"`` controller as it was before issue 18 (commit 4016264), kept for
the rate benchmark only, as the baseline its long-run rows compare against: probes about
every 43 s alone at a stated limit, and every 429 holds the pool for ``Retry-After``.
Not used by the package. The original docstring follows.

``rate="auto"``: find TMDB's rate limit from its 429s, follow it as it moves, share it.

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
  to ``w_max`` (in ``k`` seconds), a long flat stretch at it, then a convex probe above
  it. Unlike TCP's, the curve is steeper below ``w_max`` (``c``) than above it
  (``probe_c``): here a 429 costs a whole ``Retry-After`` (a second of nothing sent),
  so the known level is regained fast and the unknown above it is probed rarely (first
  429 about 21 s after the plateau);
- a cut happens at most once per round trip: a 429 for a request sent before the last
  cut was caused by the pace the cut already answered, so it does not cut again.

TMDB's 429 body states its limit ("Your request count (41) is over the allowed limit of
(40)."; code 25), and the client passes it on (:meth:`AdaptiveLimiter.stated_limit`).
It is the *server's* total, so it only ever lowers what we measured, and it tells a lone
client from one that shares:

- our own grants fill (nearly) all of it: we are alone, and the stated limit is the
  level. No cut below it (the hold empties the server's window and the pacer's cap
  keeps us at it after), one 429 when the ceiling drops (it states the new one), probes
  half as often, and a probe that stays a slot above it for two seconds without a 429
  shows the limit rose: slow start again from there. A 429 at a pace that fits is a
  request that reached the server late; the second within 30 s steps ``w_max`` down;
- others fill part of it: shares are settled without talking. A client never keeps more
  than half of the stated limit (above it, it is above any fair share); one hit while
  not probing (somebody else grew) gives a tenth back and probes twice as often, and the
  client sending more is hit more often, so shares converge.

Without a stated limit every 429 sets ``w_max`` to the level measured, and shares
converge through the probes, more slowly.

``Retry-After`` is honoured for every 429 that carries it: every waiter is held until it
has passed. Without it, a cut holds every waiter for a jittered backoff that doubles
with each cut not followed by an answer.

Pacing is :class:`~tmdb_ingest.fetch.rate.pacer.Pacer`'s: an absolute schedule and a window cap
of ``floor(rate)`` grants in any second, so the pace never bursts. docs/rate.md has the
measurements the constants come from.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque

from tmdb_ingest.fetch.rate.pacer import Clock, Pacer, Sleep

__all__ = ["AdaptiveLimiter"]

# A client whose own grants reach this share of the stated limit fills it (nearly) alone.
_ALONE = 0.9
# The curve above w_max, as a factor on probe_c (1: about 21 s from w_max to w_max + 1;
# each factor of 8 halves or doubles that time): alone at the limit the server states,
# probe half as often; hit below w_max while sharing, probe twice as often.
_PROBE_AT_LIMIT = 1 / 8
_PROBE_CONTESTED = 8.0
# Seconds within which a second 429 at a pace that fits the stated limit steps w_max down.
_LATE_MEMORY = 30.0
# Seconds a probe must stay a slot above w_max, unanswered by a 429, to show a risen ceiling
# (the server's one-second window full at the new pace, plus a round trip and late arrivals).
_RISEN_AFTER = 2.0


class AdaptiveLimiter:
    """A :class:`~tmdb_ingest.fetch.rate.limiter.Limiter` that finds the server's ceiling from 429s.

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
        self._probe = probe_c  # the constant above w_max now: probe_c times a _PROBE_* factor
        self._stated: float | None = None  # the limit the last 429's body stated
        self.cuts = 0
        self.restarts = 0  # slow starts again after a probe found the stated limit risen
        self._above_since: float | None = None
        self._late_at = -float("inf")  # the last 429 at a pace under the stated limit
        self._alone = False  # the last cut found us filling the stated limit alone
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
            pace = self._w_max + (self.c if d < 0 else self._probe) * d**3
        return min(self.max_rate, max(self.min_rate, pace))

    async def acquire(self) -> float:
        """Wait for a slot at the current pace; return the grant time."""
        pacer = self._pacer
        if self._epoch is None:
            self._epoch = self._clock()
        pacer.rate = self._pace(self._clock())
        granted = await pacer.acquire()
        # The pace may have grown while waiting; the next slot uses the new one.
        pacer.rate = pace = self._pace(granted)
        self._check_risen(granted, pace)
        sent = self._sent
        sent.append(granted)
        while sent and sent[0] < granted - 5.0:
            sent.popleft()
        return granted

    def _check_risen(self, now: float, pace: float) -> None:
        # Alone at the stated limit, a probe a whole slot above it that has gone on long
        # enough to fill the server's window without a 429: the limit rose. Find the new
        # one fast (slow start from here) rather than on the slow curve. (Not when the
        # limit may be shared: there the room may be another client's, held for a moment.)
        w_max = self._w_max
        if w_max is None or pace < w_max + 1.0:
            self._above_since = None
        elif self._above_since is None:
            self._above_since = now
        elif now - self._above_since >= _RISEN_AFTER and self._alone:
            self._from, self._epoch, self._w_max = pace, now, None
            self._above_since = None
            self.restarts += 1

    def on_answer(self, sent_at: float) -> None:
        """An answer that was not a 429: the backoff after the next cut starts afresh."""
        if sent_at > self._cut_at:
            self._streak = 0

    def stated_limit(self, limit: float) -> None:
        """The limit the next 429's body states (TMDB: "... over the allowed limit of (40)")."""
        self._stated = limit if limit > 0 else None

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """A 429: hold for ``retry_after`` if given; cut the pace unless already cut for it."""
        self.throttles += 1
        now = self._clock()
        stated, self._stated = self._stated, None
        if retry_after is not None:
            self.held_s += self._pacer.hold(now + retry_after)
        if sent_at <= self._cut_at:
            return  # sent before the last cut: that cut already answered this pace
        self._cut(now, sent_at, stated)
        if retry_after is None:
            ceiling = min(self.max_backoff, self.backoff * 2.0**self._streak)
            self._streak += 1
            # Jitter, so that clients sharing the key do not come back in lockstep.
            self.held_s += self._pacer.hold(now + self._rng.uniform(ceiling / 2, ceiling))
        self._epoch = max(now, self._pacer.hold_until)

    def _cut(self, now: float, sent_at: float, stated: float | None) -> None:
        self.cuts += 1
        self._cut_at = now
        self._above_since = None
        measured = sum(1 for t in self._sent if sent_at - 1.0 < t <= sent_at)
        reached = max(self.min_rate, min(self._pace(now), measured - 1.0))
        pace_then = self._pace(sent_at)
        known = self._w_max
        probing = known is None or pace_then >= known + 0.5
        self._alone = stated is not None and reached >= _ALONE * stated - 1.0
        if stated is None:
            # The level found: slow start's end, a probe above w_max, or a 429 below it
            # (another client, a lower ceiling, a late arrival): the curve settles shares.
            self._probe, w_max = self.probe_c, reached
        elif self._alone:
            w_max = self._alone_at(now, stated, known, probing, pace_then)
        else:
            w_max = self._sharing(stated, reached, known, probing, pace_then)
        self._w_max = w_max = min(w_max, self.max_rate)
        if self._alone:
            # Alone at a level the server stated there is nothing to back away from: the
            # hold empties its window, and the pacer's cap keeps ours at w_max after it.
            self._from = w_max
        else:
            self._from = max(self.min_rate, self.beta * w_max)
        self._k = (max(0.0, w_max - self._from) / self.c) ** (1.0 / 3.0)
        self._pacer.rate = self._from

    def _alone_at(
        self, now: float, stated: float, known: float | None, probing: bool, pace_then: float
    ) -> float:
        """We fill the limit the server states (nearly) alone: that limit is the level."""
        # The server tells us its limit with every 429: probe above it half as often as
        # otherwise, only to see it raised.
        self._probe = self.probe_c * _PROBE_AT_LIMIT
        if probing or pace_then >= stated + 0.5:
            # Above the stated limit (slow start, a probe, or the limit just fell).
            return stated
        # At a pace that fits: a request that reached the server late, or a small
        # co-tenant. Once in a while costs less than a slot less for good; again soon,
        # one slot lower leaves room for the next one.
        again = now - self._late_at < _LATE_MEMORY
        self._late_at = now
        return max(self.min_rate, min(known or stated, stated) - (1.0 if again else 0.0))

    def _sharing(
        self, stated: float, reached: float, known: float | None, probing: bool, pace_then: float
    ) -> float:
        """Others fill the rest of the stated limit: settle shares without talking."""
        if known is None:
            # Slow start met the others. Begun less than a second ago, our grants of the
            # last second undercount the pace we had reached.
            estimate = max(reached, pace_then)
        elif probing:
            estimate = reached
        else:
            # Hit while not probing: somebody else grew. Give some back (the client
            # sending more is hit more often, so shares converge) and probe again soon.
            estimate = reached * (1.0 + self.beta) / 2.0
        self._probe = self.probe_c * (1.0 if probing else _PROBE_CONTESTED)
        # Above half of the stated limit we are above any fair share.
        return max(self.min_rate, min(estimate, stated / 2.0))
