"""The protocols the TMDB client paces its requests with (:class:`Limiter`, and
:class:`StatesLimit` for a limiter that wants to hear the limit a 429 states), and
:func:`make_limiter`, the limiter a :class:`~tmdb_ingest.config.values.Rate` names."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tmdb_ingest.fetch.rate.adaptive import AdaptiveLimiter
from tmdb_ingest.fetch.rate.fixed import RateLimiter
from tmdb_ingest.fetch.rate.pacer import Clock, Sleep

if TYPE_CHECKING:
    from tmdb_ingest.config.values import Rate

__all__ = ["Limiter", "StatesLimit", "make_limiter"]


@runtime_checkable
class Limiter(Protocol):
    """Rate control as the TMDB client uses it; plug your own into ``ingest(limiter=...)``.

    The client calls :meth:`acquire` before every request and sends it at once; then
    exactly one of :meth:`on_answer` (any answer but 429, or a transport error) or
    :meth:`on_throttle` (a 429), with the time :meth:`acquire` returned, so that a
    limiter can tell throttles of requests sent before its last cut from new ones.
    A limiter that is also a :class:`StatesLimit` is told the limit a 429 states.
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


@runtime_checkable
class StatesLimit(Protocol):
    """A limiter that wants to hear the limit a 429's body states.

    TMDB's code 25 says "... over the allowed limit of (40).": the server's total for
    the key. The client calls :meth:`stated_limit` with it just before
    :meth:`Limiter.on_throttle` for that 429, on every limiter that is an instance of
    this protocol (the check is ``isinstance``).
    """

    def stated_limit(self, limit: float) -> None:
        """The server says its limit is ``limit`` requests per second."""
        ...


def make_limiter(
    rate: Rate, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
) -> Limiter:
    """The limiter for ``rate``: a fixed pace, or auto (adaptive, at most its ceiling)."""
    if rate.adaptive:
        return AdaptiveLimiter(rate.ceiling, clock=clock, sleep=sleep)
    return RateLimiter(rate.per_second, clock=clock, sleep=sleep)
