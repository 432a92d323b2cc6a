"""The run's time budget, on the event loop's clock: when to stop taking ids, when to cancel.

::

    start ........................ stop_taking_at ..... cancel_at ....... end
          fetch ids                  let requests in     flush the partial
                                     flight finish       file, save state

``end`` is ``start + budget``. What is kept back is sized from what this run measures,
not from worst cases: the in-flight reserve is about the slowest recent request (bounded
by the request timeout), the flush reserve a few of the slowest recent uploads (bounded
by ``max_flush``). Until something has been measured the configured bounds apply.

A stop can also be asked for at once, through the run's
:class:`~tmdb_ingest.run.stopping.StopRequest` (a signal, a fatal error, a lost lease),
which the deadline listens to: then no more ids are taken and what is in flight is
cancelled after a grace (about the slowest recent request; none after a fatal error or a
second Ctrl-C). Every time is read from ``loop.time()``, so tests patch one clock and
need no sleeps.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from tmdb_ingest.config.options import default
from tmdb_ingest.run.stopping import StopRequest

__all__ = ["Deadline"]

# A request is given this many times the slowest recent one, plus a fixed margin.
_REQUEST_FACTOR = 1.5
_REQUEST_MARGIN = 0.25
# The flush is the partial data file and the outcomes (in parallel), then the checkpoint
# and the report: about three uploads one after the other, plus a margin.
_FLUSH_UPLOADS = 3
_FLUSH_MARGIN = 0.5
_RECENT = 64


class Deadline:
    """When the run stops taking ids and when it cancels what still runs.

    ``budget`` None means no time limit (only a stop ends the run early).
    ``max_request`` bounds one request (connect + read timeouts); ``max_flush`` bounds
    the final flush. ``stop`` is the run's stop request (default: a new one, as
    :attr:`stop_request`). ``clock`` defaults to the running loop's ``time``.
    """

    def __init__(
        self,
        budget: float | None,
        *,
        start: float | None = None,
        max_request: float = default("connect_timeout") + default("request_timeout"),
        max_flush: float = 10.0,
        stop: StopRequest | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._clock = clock or asyncio.get_running_loop().time
        self.start = self._clock() if start is None else start
        self.budget = budget
        self.max_request = max_request
        self.max_flush = max_flush
        self._requests: deque[float] = deque(maxlen=_RECENT)
        self._uploads: deque[float] = deque(maxlen=_RECENT)
        self._stop_at: float | None = None
        self.reason: str | None = None
        self._listeners: list[Callable[[], None]] = []
        self.stop_request = stop or StopRequest()
        """The run's one channel for stopping early; the deadline follows it."""
        self.stop_request.subscribe(self._on_stop)

    def now(self) -> float:
        return self._clock()

    # -- what the run measures ------------------------------------------------------------

    def request_took(self, seconds: float) -> None:
        """Record how long one request took (from its grant to its answer)."""
        self._requests.append(max(0.0, seconds))

    def upload_took(self, seconds: float) -> None:
        """Record how long one upload took (this can move :attr:`cancel_at`)."""
        before = self.cancel_at
        self._uploads.append(max(0.0, seconds))
        if self.cancel_at != before:
            self._changed()

    def in_flight_reserve(self) -> float:
        """Time kept for requests in flight to finish."""
        if not self._requests:
            bound = self.max_request
        else:
            bound = min(self.max_request, max(self._requests) * _REQUEST_FACTOR + _REQUEST_MARGIN)
        return bound if self.budget is None else min(bound, 0.3 * self.budget)

    def flush_reserve(self) -> float:
        """Time kept for the final flush and the state."""
        if not self._uploads:
            guess = self.max_flush if self.budget is None else max(1.0, 0.1 * self.budget)
            return min(self.max_flush, guess)
        slowest = max(self._uploads)
        return min(self.max_flush, _FLUSH_UPLOADS * slowest + _FLUSH_MARGIN)

    # -- the marks --------------------------------------------------------------------------

    @property
    def end(self) -> float | None:
        """When the run must have returned, or None without a budget."""
        return None if self.budget is None else self.start + self.budget

    @property
    def cancel_at(self) -> float | None:
        """When what still runs is cancelled (the flush follows)."""
        marks = []
        if self.end is not None:
            marks.append(self.end - self.flush_reserve())
        if self._stop_at is not None:
            marks.append(self._stop_at)
        return min(marks) if marks else None

    @property
    def stop_taking_at(self) -> float | None:
        """After this no new id is taken and no retry wait is begun."""
        if self._stop_at is not None:
            return min(self._stop_at, self.now())
        cancel_at = self.cancel_at
        return None if cancel_at is None else cancel_at - self.in_flight_reserve()

    def taking(self) -> bool:
        """Whether a new id may be started now."""
        mark = self.stop_taking_at
        return mark is None or self.now() < mark

    # -- stopping early -------------------------------------------------------------------

    def _on_stop(self, stop: StopRequest) -> None:
        at_once = stop.error is not None or stop.urgent
        self.stop(stop.reason or "stopped", grace=0.0 if at_once else self.in_flight_reserve())

    def stop(self, reason: str, *, grace: float = 0.0) -> None:
        """Stop taking ids now; cancel what runs after ``grace`` seconds. The first reason wins.

        The run asks through :attr:`stop_request`; this is how the deadline follows it.
        """
        if self.reason is None:
            self.reason = reason
        at = self.now() + max(0.0, grace)
        if self._stop_at is None or at < self._stop_at:
            self._stop_at = at
            self._changed()

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` when :attr:`cancel_at` moves; returns an unsubscriber."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)
