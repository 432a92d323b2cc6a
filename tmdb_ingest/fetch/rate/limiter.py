"""The :class:`Limiter` protocol the TMDB client paces its requests with, and
:func:`make_limiter`, the limiter a :class:`~tmdb_ingest.config.settings.Rate` names."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

from tmdb_ingest.fetch.rate.adaptive import AdaptiveLimiter
from tmdb_ingest.fetch.rate.fixed import RateLimiter
from tmdb_ingest.fetch.rate.pacer import Clock, Sleep

__all__ = ["Limiter", "make_limiter"]


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
        return AdaptiveLimiter(max_rate, clock=clock, sleep=sleep)
    return RateLimiter(float(rate), clock=clock, sleep=sleep)
