"""``rate="auto"``: the adaptive limiter against a simulated TMDB limit on virtual time.

Every scenario runs on the event loop's patched clock (tests/sim_rate.py): no sleeping,
deterministic, minutes of traffic in well under a second.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable

import pytest

from tests.helpers import busiest_window
from tests.sim_rate import SimServer, stalls, virtual_time
from tmdb_ingest import Limiter as PublicLimiter
from tmdb_ingest.config.values import Rate
from tmdb_ingest.fetch.rate import Limiter, RateLimiter, make_limiter
from tmdb_ingest.fetch.rate.adaptive import LATE_HOLD, PROBE_FIRST, PROBE_LONGEST, AdaptiveLimiter

pytestmark = pytest.mark.virtual_clock  # tests/virtual_clock.py, through sim_rate.virtual_time


def auto(clock: object, seed: int = 0, **kwargs: object) -> AdaptiveLimiter:
    limiter = make_limiter(Rate.auto(max=50), clock=clock, sleep=asyncio.sleep)  # type: ignore[arg-type]
    assert isinstance(limiter, AdaptiveLimiter)
    limiter._rng = random.Random(seed)
    for name, value in kwargs.items():
        setattr(limiter, name, value)
    return limiter


def test_make_limiter_gives_auto_or_today_s_fixed_limiter() -> None:
    """'auto' is an adaptive Limiter bounded by max_rate; a number is today's RateLimiter."""
    adaptive = make_limiter(Rate.auto(max=30))
    assert isinstance(adaptive, AdaptiveLimiter)
    assert isinstance(adaptive, Limiter)
    assert PublicLimiter is Limiter
    assert adaptive.max_rate == 30
    assert adaptive.rate == 15  # starts at half of max_rate
    fixed = make_limiter(Rate.fixed(40))
    assert type(fixed) is RateLimiter
    assert fixed.rate == 40


STATED = pytest.mark.parametrize("stated", [True, False], ids=["stated", "unstated"])


@STATED
@pytest.mark.parametrize(
    ("ceiling", "min_share"),
    [(12, 0.88), (25, 0.92), (45, 0.92)],  # below, at and above the start rate (25)
)
async def test_finds_a_hidden_ceiling(ceiling: int, min_share: float, stated: bool) -> None:
    """Over 70 s, incl. the start, it gets most of the ceiling with under 1% of 429s,
    whether the 429s state the limit or not."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: ceiling, t0=clock(), state_limit=stated)
        await server.client("a", auto(clock), until=70)
    stats = server.stats()
    assert stats.admitted >= min_share * ceiling * 70
    assert stats.throttled_share < 0.01
    assert stats.throttled >= 1  # it did have to find the ceiling


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_late_arrivals_cost_share_but_not_429s(seed: int) -> None:
    """Requests that reach the server tens of milliseconds late now and then (as through
    the real pipeline) share its window with later ones and draw 429s at a pace that fits;
    it still keeps most of the ceiling, under 1% of 429s, and does not sink below it."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 30, t0=clock(), delay=stalls(seed, share=0.003))
        limiter = auto(clock)
        await server.client("a", limiter, until=70)
    stats = server.stats()
    assert stats.admitted >= 0.88 * 30 * 70
    assert stats.throttled_share < 0.01
    assert limiter.w_max is not None
    assert 27 <= limiter.w_max <= 30


async def test_never_above_max_rate_and_never_a_burst() -> None:
    """With no ceiling in sight it climbs to max_rate and stays there: no second ever holds
    more than max_rate grants, and no two grants are closer than half an interval."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 1000, t0=clock())
        limiter = auto(clock)
        await server.client("a", limiter, until=30)
    times = [t for _, t, _ in server.log]
    assert busiest_window(times) <= 50
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.5 / 50 - 1e-9
    assert limiter.rate == 50
    assert server.stats(since=10).admitted >= 0.95 * 50 * 20


@STATED
async def test_follows_a_ceiling_that_drops_and_recovers(stated: bool) -> None:
    """45 -> 25 at 30 s -> 45 at 100 s: it settles under 25, then climbs back near 45.
    Alone at a stated limit, a probe that fills a slot above it without a 429 starts slow
    start again; without one, the probe curve climbs (a restart could be another client
    leaving, where the curve keeps shares settled)."""

    def ceiling(t: float) -> float:
        return 25 if 30 <= t < 100 else 45

    with virtual_time() as clock:
        server = SimServer(clock, ceiling, t0=clock(), state_limit=stated)
        limiter = auto(clock)
        await server.client("a", limiter, until=200)
    assert limiter.restarts >= 1 if stated else limiter.restarts == 0
    low = server.stats(since=40, until=100)
    assert low.admitted >= 0.9 * 25 * 60
    assert low.throttled_share < 0.01
    high = server.stats(since=160, until=200)
    assert high.admitted >= 0.9 * 45 * 40
    assert server.stats().throttled_share < 0.01


@STATED
async def test_two_clients_share_one_ceiling_fairly(stated: bool) -> None:
    """Two clients that never talk, the second starting 30 s after the first, each get
    40-60% of one 45/s ceiling in the last minute of five, and together most of it."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 45, t0=clock(), state_limit=stated)
        await asyncio.gather(
            server.client("a", auto(clock, seed=1), until=300),
            server.client("b", auto(clock, seed=2), until=300, start=30),
        )
    a = server.stats("a", since=240).admitted
    b = server.stats("b", since=240).admitted
    assert 0.4 <= a / (a + b) <= 0.6
    assert a + b >= 0.88 * 45 * 60
    assert server.stats().throttled_share < 0.01


@STATED
async def test_without_retry_after_it_backs_off_with_jitter(stated: bool) -> None:
    """No Retry-After: it still finds the ceiling, with few 429s."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 30, t0=clock(), retry_after=None, state_limit=stated)
        await server.client("a", auto(clock), until=70)
    stats = server.stats()
    assert stats.admitted >= 0.92 * 30 * 70
    assert stats.throttled_share < 0.01


async def test_retry_after_holds_every_waiter() -> None:
    """After a 429 with Retry-After: 3, no waiter is granted for three seconds."""
    with virtual_time() as clock:
        limiter = auto(clock)
        sent_at = await limiter.acquire()
        limiter.on_throttle(sent_at, 3.0)
        throttled_at = clock()
        grants = await asyncio.gather(*(limiter.acquire() for _ in range(5)))
    assert min(grants) >= throttled_at + 3.0
    assert limiter.cuts == 1


async def test_missing_retry_after_holds_for_a_jittered_growing_backoff() -> None:
    """Without Retry-After a cut holds for a jittered backoff in [b/2, b], b doubling with
    each cut not followed by an answer, and starting afresh after one."""
    with virtual_time() as clock:
        limiter = auto(clock)
        holds = []
        for _ in range(3):
            sent_at = await limiter.acquire()
            limiter.on_throttle(sent_at, None)
            holds.append(limiter._pacer.hold_until - clock())
        sent_at = await limiter.acquire()
        limiter.on_answer(sent_at)
        sent_at = await limiter.acquire()
        limiter.on_throttle(sent_at, None)
        after_answer = limiter._pacer.hold_until - clock()
    for hold, ceiling in zip(holds, (0.5, 1.0, 2.0), strict=True):
        assert ceiling / 2 <= hold <= ceiling
    assert 0.25 <= after_answer <= 0.5
    # different seeds come back at different times
    with virtual_time() as clock:
        other = auto(clock, seed=7)
        other.on_throttle(await other.acquire(), None)
        assert other._pacer.hold_until - clock() != pytest.approx(holds[0])


async def test_cuts_at_most_once_per_round_trip() -> None:
    """429s for requests sent before the last cut do not cut again; a 429 for a request
    sent after it does."""
    with virtual_time() as clock:
        limiter = auto(clock)
        early = [await limiter.acquire() for _ in range(10)]
        limiter.on_throttle(early[-1], 1.0)
        after_first = limiter.rate
        assert limiter.cuts == 1
        for sent_at in early[:-1]:
            limiter.on_throttle(sent_at, 1.0)  # stale: answered by the first cut
        assert limiter.cuts == 1
        assert limiter.rate == pytest.approx(after_first)
        late = await limiter.acquire()
        limiter.on_throttle(late, 1.0)
        assert limiter.cuts == 2
        assert limiter.rate < after_first
    assert limiter.throttles == 11


async def test_a_cut_lands_at_the_measured_pace_not_the_overshoot() -> None:
    """The first 429 comes after the pace overshot in slow start; the cut is taken from
    the grants that were actually in the server's window (w_max = ceiling), not from it."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 30, t0=clock())
        limiter = auto(clock)
        await server.client("a", limiter, until=2.0)
    assert limiter.cuts == 1
    assert limiter.w_max == pytest.approx(30)


def test_rejects_bad_settings_naming_them() -> None:
    """Out-of-range tuning values are refused with the name of the value."""
    with pytest.raises(ValueError, match="max_rate"):
        AdaptiveLimiter(0)
    with pytest.raises(ValueError, match="start_rate"):
        AdaptiveLimiter(50, start_rate=60)
    with pytest.raises(ValueError, match="beta"):
        AdaptiveLimiter(50, beta=1.0)


# -- what the limit stated in TMDB's 429 body changes ------------------------------------


def late_at(*indices: int, by: float = 0.05) -> Callable[[], float]:
    """Grant-to-arrival delays: the requests numbered ``indices`` (from 0) arrive ``by``
    seconds late, every other one a millisecond after its grant."""
    count = itertools.count()
    chosen = set(indices)
    return lambda: by if next(count) in chosen else 0.001


async def test_alone_at_the_stated_limit_it_keeps_it_and_probes_rarely() -> None:
    """The first 429 states 30 and our grants filled it: w_max is 30 and the pace after
    the hold is 30, not a cut below it (nothing to climb back); no probe above it within
    the first minute (the first comes PROBE_FIRST after)."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 30, t0=clock())
        limiter = auto(clock)
        await server.client("a", limiter, until=3)
        assert limiter.cuts == 1
        assert limiter.w_max == 30
        assert limiter.rate == pytest.approx(30, abs=0.01)
        await server.client("a", limiter, start=3, until=60)
    throttled = [t for _, t, was in server.log if was]
    assert all(t < 2 for t in throttled), throttled
    assert server.stats(since=3, until=40).admitted >= 0.95 * 30 * 37


async def test_a_drop_the_server_states_costs_one_cut() -> None:
    """45 -> 25 at 30 s with the new limit in the 429: one cut, straight to 25 (without it,
    the pace measured before the drop is too high and a second 429 finds the level)."""
    for stated, cuts in ((True, 1), (False, 2)):
        with virtual_time() as clock:
            server = SimServer(
                clock, lambda t: 45 if t < 30 else 25, t0=clock(), state_limit=stated
            )
            limiter = auto(clock)
            await server.client("a", limiter, until=29)
            before = limiter.cuts
            await server.client("a", limiter, start=29, until=45)
        assert limiter.cuts - before == cuts, stated
        assert limiter.w_max == 25
    assert server.stats(since=33, until=45).admitted >= 0.95 * 25 * 12


async def test_a_late_arrival_holds_a_moment_not_retry_after_and_keeps_the_schedule() -> None:
    """Alone at a stated 30, a request that reaches the server 50 ms late draws a 429 at a
    pace that fits. The pool is held LATE_HOLD, not Retry-After's second; no cut, the level
    and the probe schedule stay. A third such 429 within two seconds is somebody else
    filling the window: held in full."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 30, t0=clock(), delay=late_at(300))
        limiter = auto(clock)
        await server.client("a", limiter, until=8)
        epoch = limiter._epoch
        assert (limiter.cuts, limiter.late_arrivals) == (1, 0)
        await server.client("a", limiter, start=8, until=16)
        assert (limiter.cuts, limiter.late_arrivals, limiter.w_max) == (1, 1, 30)
        assert limiter.held_s == pytest.approx(1.0 + LATE_HOLD, abs=0.01)
        assert limiter._epoch == epoch
        assert server.stats(since=3, until=16).admitted >= 0.9 * 30 * 13
        # Three 429s at a fitting pace within two seconds: the third is held in full.
        for _ in range(3):
            sent_at = await limiter.acquire()
            limiter.stated_limit(30)
            limiter.on_throttle(sent_at, 1.0)
        assert (limiter.cuts, limiter.late_arrivals) == (2, 3)
        assert limiter._pacer.hold_until - clock() == pytest.approx(1.0)


def probe_times(server: SimServer, name: str | None = None) -> list[float]:
    """When a burst of 429s began (seconds since t0): one burst per probe."""
    times = [t for who, t, was in server.log if was and name in (None, who)]
    return [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > 5.0]


async def test_alone_at_a_steady_limit_probes_thin_out() -> None:
    """Alone at a steady stated 45 for 17 minutes: after the level is found, the first
    probe comes PROBE_FIRST later and each that finds the same limit doubles the wait, up
    to PROBE_LONGEST; every 429 is a probe's."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 45, t0=clock())
        limiter = AdaptiveLimiter(60, clock=clock, rng=random.Random(0))
        await server.client("a", limiter, until=1000)
    probes = probe_times(server)
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert len(gaps) == 4, probes
    waits = (PROBE_FIRST, 2 * PROBE_FIRST, PROBE_LONGEST, PROBE_LONGEST)
    for gap, wait in zip(gaps, waits, strict=True):
        assert wait <= gap <= wait + 3.0, probes
    assert limiter.probe_interval == PROBE_LONGEST
    assert server.stats(since=10).admitted >= 0.975 * 45 * 990


@pytest.mark.parametrize(
    ("rise_at", "bound"),
    [(30.0, PROBE_FIRST + 5.0), (700.0, PROBE_LONGEST + 5.0)],
    ids=["after-the-start", "converged"],
)
async def test_a_risen_limit_is_found_within_the_documented_bound(
    rise_at: float, bound: float
) -> None:
    """45 -> 55 at ``rise_at``: the next probe finds room, slow start finds 55, within one
    probe interval (PROBE_FIRST after a start, at most PROBE_LONGEST) and 5 s; and the
    waits start again from PROBE_FIRST, as the limit moved."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 45 if t < rise_at else 55, t0=clock())
        limiter = AdaptiveLimiter(60, clock=clock, rng=random.Random(0))
        await server.client("a", limiter, until=rise_at + bound + 10)
    found = [t for _, t, was in server.log if was and t >= rise_at]
    assert found, "the rise was never found"
    assert found[0] - rise_at <= bound
    assert limiter.w_max == 55
    assert limiter.restarts == 1
    assert limiter.probe_interval == PROBE_FIRST
    assert server.stats(since=found[0] + 2).admitted >= 0.97 * 55 * (rise_at + bound + 8 - found[0])


async def test_a_drop_after_the_probes_thinned_out_costs_one_cut() -> None:
    """Converged alone at 45 (the wait between probes long), the limit drops to 25: the
    first 429 states it, one cut finds it, and the waits start again from PROBE_FIRST."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 45 if t < 400 else 25, t0=clock())
        limiter = auto(clock)
        await server.client("a", limiter, until=399)
        assert limiter.probe_interval == PROBE_LONGEST
        before = limiter.cuts
        await server.client("a", limiter, start=399, until=420)
    assert limiter.cuts - before == 1
    assert limiter.w_max == 25
    assert limiter.probe_interval == PROBE_FIRST
    assert server.stats(since=403, until=420).admitted >= 0.97 * 25 * 17


async def test_sharing_at_half_probes_thin_out_and_a_neighbour_s_probe_keeps_the_half() -> None:
    """Two clients sharing a stated 45 for ten minutes, with late arrivals: each keeps half,
    the waits between its probes grow, and a 429 while at half (a neighbour's probe, a late
    arrival) does not push it below half; together most of the limit, 40-60% each."""
    levels: list[float] = []

    def recording(limiter: AdaptiveLimiter) -> AdaptiveLimiter:
        throttle = limiter.on_throttle

        def on_throttle(sent_at: float, retry_after: float | None) -> None:
            throttle(sent_at, retry_after)
            if limiter.cuts > 1 and limiter.w_max is not None:
                levels.append(limiter.w_max)

        limiter.on_throttle = on_throttle  # type: ignore[method-assign]
        return limiter

    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 45, t0=clock(), delay=stalls(1))
        a, b = recording(auto(clock, seed=1)), recording(auto(clock, seed=2))
        await asyncio.gather(server.client("a", a, until=600), server.client("b", b, until=600))
    assert min(levels) >= 22.0, levels  # after the first cut, never under half
    for limiter in (a, b):
        assert limiter.share_interval >= 120.0  # 30 s, doubled at least twice
        assert limiter.w_max is not None
        assert limiter.w_max >= 22.0
    shares = [server.stats(name).admitted for name in "ab"]
    assert sum(shares) >= 0.94 * 45 * 600
    assert all(0.4 <= part / sum(shares) <= 0.6 for part in shares)


async def test_sharing_a_stated_limit_nobody_keeps_more_than_half() -> None:
    """Two clients starting together under a stated 45: the slow start that meets the
    other takes at most half; over the first minute, start included, they get most of
    the ceiling between them and 40-60% each."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 45, t0=clock())
        a, b = auto(clock, seed=1), auto(clock, seed=2)
        await asyncio.gather(server.client("a", a, until=3), server.client("b", b, until=3))
        assert a.w_max is not None
        assert b.w_max is not None
        assert max(a.w_max, b.w_max) <= 22.5
        await asyncio.gather(
            server.client("a", a, start=3, until=60), server.client("b", b, start=3, until=60)
        )
    shares = [server.stats(name, until=60).admitted for name in "ab"]
    assert sum(shares) >= 0.88 * 45 * 60
    assert all(0.4 <= part / sum(shares) <= 0.6 for part in shares)
    assert server.stats().throttled_share < 0.01


async def test_a_client_left_alone_grows_back_to_the_whole_limit() -> None:
    """Two share a stated 45; the second stops after a minute (its shard is done). The
    first finds the freed half without a word: most of 45 two minutes later."""
    with virtual_time() as clock:
        server = SimServer(clock, lambda t: 45, t0=clock())
        await asyncio.gather(
            server.client("a", auto(clock, seed=1), until=240),
            server.client("b", auto(clock, seed=2), until=60),
        )
    assert server.stats("a", since=180, until=240).admitted >= 0.9 * 45 * 60
