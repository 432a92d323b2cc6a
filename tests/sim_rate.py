"""A simulated TMDB rate limit on virtual time, for the adaptive limiter's tests.

:func:`virtual_time` runs a block on the test's virtual loop clock in auto mode
(tests/virtual_clock.py: the clock jumps to the next timer instead of waiting), so
``asyncio.sleep`` costs nothing and a minute of traffic runs in well under a second,
deterministically. Tests that use it are marked ``virtual_clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tests.helpers import busiest_window
from tests.virtual_clock import virtual_loop
from tmdb_ingest.fetch.rate import Limiter


@contextlib.contextmanager
def virtual_time(start: float = 1000.0) -> Iterator[Callable[[], float]]:
    """Run the block on the test's virtual clock in auto mode; yield that clock (the
    loop's ``time``). The test must be marked ``virtual_clock`` (tests/virtual_clock.py).
    The clock starts at ``start``, or goes on from where an earlier block left it."""
    loop = virtual_loop()
    loop.clock.now = max(loop.clock.now, start)
    auto, loop.auto = loop.auto, True
    try:
        yield loop.time
    finally:
        loop.auto = auto


Ceiling = Callable[[float], float]


@dataclass
class SimServer:
    """A sliding one-second window like TMDB's edge: a request over ``ceiling(t)`` gets 429.

    ``ceiling`` maps seconds since ``t0`` to the limit then. Answers take ``latency``
    seconds (429s ``throttle_latency``, as they are decided on arrival); ``retry_after``
    is the header value sent with a 429, or None. ``delay``, when given, is drawn for each
    request: the seconds between its grant and its arrival (the real pipeline's requests
    reach the server a millisecond after the grant, now and then tens of milliseconds:
    an event-loop or scheduler stall on either side; see :func:`stalls`). With
    ``state_limit`` (the default) each 429 also states the limit in force, as TMDB's
    code-25 body does, through the limiter's ``stated_limit`` when it has one.
    """

    clock: Callable[[], float]
    ceiling: Ceiling
    latency: float = 0.15
    throttle_latency: float = 0.005
    retry_after: float | None = 1.0
    t0: float = 0.0
    delay: Callable[[], float] | None = None
    state_limit: bool = True
    admitted: deque[float] = field(default_factory=deque)
    log: list[tuple[str, float, bool]] = field(default_factory=list)  # client, t, throttled

    def arrive(self, client: str) -> bool:
        """Admit (True) or throttle (False) a request arriving now."""
        now = self.clock()
        window = self.admitted
        while window and window[0] <= now - 1.0:
            window.popleft()
        ok = len(window) < self.ceiling(now - self.t0)
        if ok:
            window.append(now)
        self.log.append((client, now - self.t0, not ok))
        return ok

    def max_in_window(self) -> int:
        """The most admitted requests in any one-second window (half-open)."""
        return busiest_window([t for _, t, throttled in self.log if not throttled])

    async def client(
        self, name: str, limiter: Limiter, until: float, workers: int = 20, start: float = 0.0
    ) -> None:
        """Send requests through ``limiter`` from ``start`` to ``until`` (seconds since t0)."""
        await asyncio.sleep(max(0.0, self.t0 + start - self.clock()))

        async def worker() -> None:
            while self.clock() < self.t0 + until:
                sent_at = await limiter.acquire()
                if self.clock() >= self.t0 + until:
                    return
                if self.delay is not None:
                    await asyncio.sleep(self.delay())
                if self.arrive(name):
                    await asyncio.sleep(self.latency)
                    limiter.on_answer(sent_at)
                else:
                    stated = self.ceiling(self.clock() - self.t0)
                    await asyncio.sleep(self.throttle_latency)
                    hook = getattr(limiter, "stated_limit", None)
                    if self.state_limit and hook is not None:
                        hook(stated)
                    limiter.on_throttle(sent_at, self.retry_after)

        await asyncio.gather(*(worker() for _ in range(workers)))

    def stats(self, name: str | None = None, since: float = 0.0, until: float = 1e18) -> Stats:
        """Counts for one client (or all), over ``[since, until)`` seconds since t0."""
        rows = [r for r in self.log if (name is None or r[0] == name) and since <= r[1] < until]
        throttled = sum(1 for r in rows if r[2])
        return Stats(requests=len(rows), admitted=len(rows) - throttled, throttled=throttled)


def stalls(
    seed: int = 0, share: float = 0.003, low: float = 0.02, high: float = 0.08
) -> Callable[[], float]:
    """Grant-to-arrival delays as measured through the real pipeline against the emulator
    process: about 1 ms, but ``share`` of the requests ``low``-``high`` seconds late
    (seeded, so deterministic). More than the pacer's 20 ms window margin, such a late
    request shares the server's window with one sent a second after it: a 429 at a pace
    that fits."""
    rng = random.Random(seed)

    def delay() -> float:
        return rng.uniform(low, high) if rng.random() < share else 0.001

    return delay


@dataclass(frozen=True)
class Stats:
    requests: int
    admitted: int
    throttled: int

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0
