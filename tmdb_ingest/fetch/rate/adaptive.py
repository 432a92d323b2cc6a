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
  keeps us at it after), and one 429 when the ceiling drops (it states the new one).
  Probes above it only look for a raised limit, so they thin out: the first comes
  ``probe_first`` (120 s) after the level is found, and each that finds the same limit
  doubles the wait, up to ``probe_longest`` (300 s); a limit that moves (a drop, a rise)
  starts again from the first. A probe that stays a slot above the level for two
  seconds without a 429 shows the limit rose: slow start again from there. So a rise is
  found within one wait and a few seconds: at most 305 s, 125 s after a start or a move;
- others fill part of it: shares are settled without talking. A client never keeps more
  than half of the stated limit (above it, it is above any fair share). At that half
  there is no cut below it either, a 429 at a pace that still fits the half (a
  neighbour's probe) keeps it, and probes thin out the same way from 30 s (they look for
  a neighbour that left; two slots of room for two seconds start slow start again).
  Below half, one hit while not probing (somebody else grew) gives a tenth back and
  probes twice as often; the client sending more is hit more often, so shares converge.

Without a stated limit every 429 sets ``w_max`` to the level measured, and shares
converge through the probes, more slowly.

``Retry-After`` is honoured for every 429 that can mean our pace is too high: every
waiter is held until it has passed. Without it, a cut holds every waiter for a jittered
backoff that doubles with each cut not followed by an answer. The exception: alone at a
stated limit, a 429 for a request whose second held no more of our grants than that
limit is a request that reached the server late (an event-loop or scheduler stall);
the pace fits, and a second's hold would only empty the server's window for nothing, so
it holds ``late_hold`` (50 ms) and changes nothing else. A third such 429 within two
seconds is somebody else filling the window: that one is held in full and cut.

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
# each factor of 8 halves or doubles that time): hit below w_max while sharing, probe
# twice as often.
_PROBE_CONTESTED = 8.0
# Alone at the limit the server states, the seconds from reaching it to the first probe
# above it; each probe that finds the same limit doubles the wait, up to the longest; a
# limit that moves (a drop, or a probe that finds it risen) starts again from the first.
PROBE_FIRST = 120.0
PROBE_LONGEST = 300.0
# Sharing it, at half of it: the first wait (a neighbour may leave soon; the same doubling).
_SHARE_FIRST = 30.0
# A third 429 at a pace that fits the stated limit within this many seconds is not taken
# for a late arrival (somebody else is filling the window): it is held in full. (Late
# arrivals come alone, a few a minute at most; a co-tenant's draw one every late hold.)
_LATE_MEMORY = 2.0
_LATE_AT_MOST = 2
# Alone at a stated limit, a 429 at a pace that fits it is a request that reached the
# server late: the pool is held this long, not Retry-After's second. Simulated, a hold
# buys almost no 429s (38 in five minutes with none, 35 with a whole second) and costs
# its length in requests; 50 ms is about the median lateness measured (docs/rate.md).
LATE_HOLD = 0.05
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
    ``probe_first`` and ``probe_longest`` are the first and the longest wait between
    probes alone at a stated limit (doubling in between); ``late_hold`` the hold after a
    429 that a late arrival drew there.
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
        probe_first: float = PROBE_FIRST,
        probe_longest: float = PROBE_LONGEST,
        late_hold: float = LATE_HOLD,
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
        self._late_at: deque[float] = deque()  # recent 429s at a pace under the stated limit
        self._cut_hold = float("inf")  # what the last cut held 429s sent before it for
        self._level: float | None = None  # the stated limit we fill alone (None: not alone)
        self.probe_first = probe_first
        self.probe_longest = probe_longest
        self.probe_interval = probe_first  # alone at a stated limit: seconds to the next probe
        self.late_hold = late_hold
        self.share_interval = _SHARE_FIRST  # the same at half of it, sharing
        self._half: float | None = None  # the stated limit we keep half of (None: not)
        self.late_arrivals = 0  # 429s taken for late arrivals (held late_hold only)
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
        half = self._half is not None
        # At half, the slot that floor() leaves between two halves may be free.
        slots = 2.0 if half else 1.0
        if w_max is None or pace < w_max + slots:
            self._above_since = None
        elif self._above_since is None:
            self._above_since = now
        elif now - self._above_since >= _RISEN_AFTER and (self._alone or half):
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
        """A 429: hold for ``retry_after`` if given; cut the pace unless already cut for it.

        Alone at a stated limit, a 429 at a pace that fits it (a request that reached the
        server late) holds only ``late_hold`` and changes nothing else, unless another came
        within the last few seconds.
        """
        self.throttles += 1
        now = self._clock()
        stated, self._stated = self._stated, None
        if sent_at <= self._cut_at:
            # Sent before the last cut (or the last late arrival): that one answered it.
            if retry_after is not None:
                self.held_s += self._pacer.hold(now + min(retry_after, self._cut_hold))
            return
        if self._late(now, sent_at, stated):
            self.late_arrivals += 1
            self._cut_at = now
            self._cut_hold = self.late_hold
            self.held_s += self._pacer.hold(now + self.late_hold)
            return
        self._cut_hold = float("inf")
        if retry_after is not None:
            self.held_s += self._pacer.hold(now + retry_after)
        keep_epoch = self._cut(now, sent_at, stated)
        if retry_after is None:
            ceiling = min(self.max_backoff, self.backoff * 2.0**self._streak)
            self._streak += 1
            # Jitter, so that clients sharing the key do not come back in lockstep.
            self.held_s += self._pacer.hold(now + self._rng.uniform(ceiling / 2, ceiling))
        if not keep_epoch:
            self._epoch = max(now, self._pacer.hold_until)

    def _late(self, now: float, sent_at: float, stated: float | None) -> bool:
        # A 429 while alone at the limit the server states, for a request whose second held
        # no more of our grants than that limit: the pace fits, so a request that reached
        # the server late still filled its window. Holding the pool a whole Retry-After
        # second would empty that window for nothing. (Several within seconds: somebody
        # else fills part of it; that is a cut.)
        if stated is None or not self._alone or stated != self._level:
            return False
        if self._measured(sent_at) > stated:
            return False
        recent = self._late_at
        recent.append(now)
        while recent[0] <= now - _LATE_MEMORY:
            recent.popleft()
        return len(recent) <= _LATE_AT_MOST

    def _measured(self, sent_at: float) -> int:
        """Our grants in the second up to ``sent_at``: what we put in the server's window."""
        return sum(1 for t in self._sent if sent_at - 1.0 < t <= sent_at)

    def _cut(self, now: float, sent_at: float, stated: float | None) -> bool:
        """Take a new w_max from a 429; True when the curve's epoch is to stay."""
        self.cuts += 1
        self._cut_at = now
        self._above_since = None
        measured = self._measured(sent_at)
        reached = max(self.min_rate, min(self._pace(now), measured - 1.0))
        pace_then = self._pace(sent_at)
        known = self._w_max
        probing = known is None or pace_then >= known + 0.5
        was_alone = self._alone
        self._alone = stated is not None and reached >= _ALONE * stated - 1.0
        keep_epoch = False
        if stated is None:
            # The level found: slow start's end, a probe above w_max, or a 429 below it
            # (another client, a lower ceiling, a late arrival): the curve settles shares.
            self._probe, w_max = self.probe_c, reached
            self._level = self._half = None
        elif self._alone:
            over = measured > stated
            w_max = self._alone_at(stated, known, over, was_alone)
            # A 429 at a pace that fits (a late arrival, again) keeps the probe schedule.
            keep_epoch = was_alone and not over and known == w_max
            self._level, self._half = stated, None
        else:
            if self._half == stated and known is not None and measured <= known + 0.5:
                # At half, a pace a fraction above it is still capped at it: not a probe.
                probing = False
            w_max = self._sharing(stated, reached, known, probing, pace_then)
            self._level = None
        self._w_max = w_max = min(w_max, self.max_rate)
        if self._alone or self._half is not None:
            # At a level the server stated (all of it alone, half of it sharing) there is
            # nothing to back away from: the hold empties our part of its window, and the
            # pacer's cap keeps ours at w_max after it.
            self._from = w_max
        else:
            self._from = max(self.min_rate, self.beta * w_max)
        self._k = (max(0.0, w_max - self._from) / self.c) ** (1.0 / 3.0)
        self._pacer.rate = self._pace(now) if keep_epoch else self._from
        return keep_epoch

    def _alone_at(
        self,
        stated: float,
        known: float | None,
        over: bool,
        was_alone: bool,
    ) -> float:
        """We fill the limit the server states (nearly) alone: that limit is the level.

        It only moves when the server's does, so probes above it only look for a raised
        limit: each that finds the same one doubles the wait before the next.
        """
        if over:
            # Above the stated limit: slow start, a probe, or the limit just fell.
            if was_alone and known is not None and stated == self._level:
                self.probe_interval = min(self.probe_longest, 2.0 * self.probe_interval)
            else:
                self.probe_interval = self.probe_first
            level = stated
        else:
            # At a pace that fits, a second time within seconds: a request that reached the
            # server late, or a small co-tenant; held in full, the level kept.
            level = min(known or stated, stated)
        # The curve reaches w_max + 1 one probe interval after the epoch.
        self._probe = self.probe_interval**-3.0
        return level

    def _sharing(
        self, stated: float, reached: float, known: float | None, probing: bool, pace_then: float
    ) -> float:
        """Others fill the rest of the stated limit: settle shares without talking.

        Nobody keeps more than half of it. At that half, like alone at the whole, probes
        only look for room a neighbour left, and each that finds none doubles the wait.
        """
        at_half = self._half == stated
        if known is None:
            # Slow start met the others. Begun less than a second ago, our grants of the
            # last second undercount the pace we had reached.
            estimate = max(reached, pace_then)
        elif probing:
            estimate = reached
        elif at_half and reached >= stated / 2.0 - 1.5:
            # At our half, hit by a neighbour's probe: it is held to half too, and its
            # own 429 takes it back there.
            estimate = known
        else:
            # Hit while not probing: somebody else grew. Give some back (the client
            # sending more is hit more often, so shares converge) and probe again soon.
            estimate = reached * (1.0 + self.beta) / 2.0
        # Above half of the stated limit we are above any fair share.
        w_max = max(self.min_rate, min(estimate, stated / 2.0))
        if known is not None and (probing or at_half) and w_max >= stated / 2.0 - 0.5:
            if not at_half:
                self.share_interval = _SHARE_FIRST
            elif probing:
                self.share_interval = min(self.probe_longest, 2.0 * self.share_interval)
            self._probe = self.share_interval**-3.0
            self._half = stated
        else:
            self._probe = self.probe_c * (1.0 if probing else _PROBE_CONTESTED)
            self._half = None
        return w_max
