"""The one way to ask a run to stop: a :class:`StopRequest`.

Everything that ends a run early asks here, with a reason: a signal
(:func:`stop_on_signals`), a lost lease, a fatal error (a write that failed, a key
rejected, a bug in one of the run's tasks: :meth:`StopRequest.fail`). The run's
:class:`~tmdb_ingest.run.deadline.Deadline` listens: no new id is taken and nothing new
is sent; the requests in flight may finish for about as long as a request takes (not
after a fatal error: then they are cancelled at once); the partial file lands, the state
is saved, and the summary says ``done: false`` (with the error, if one was asked): the
same command resumes, exactly once.

A second Ctrl-C asks for :meth:`StopRequest.hurry`: nothing more is waited for (no
request, no upload in flight); the state is saved and the summary still returned. Exactly
once never rests on that: it rests on manifests and data files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tmdb_ingest.errors import FatalError

__all__ = ["StopRequest", "stop_on_signals"]

log = logging.getLogger("tmdb_ingest")


class StopRequest:
    """A one-way switch with a reason; subscribers hear of every change.

    ``reason``: the first reason asked (what the log and the CLI name). ``signal``: the
    signal that asked, if one did. ``error``: the first fatal error asked, which the run
    raises at its end (it may come after another reason: a write that fails while a
    Ctrl-C is being served). ``urgent``: nothing more is waited for.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signal: int | None = None
        self.error: FatalError | None = None
        self.urgent = False
        self._subscribers: list[Callable[[StopRequest], None]] = []
        self._hurried = asyncio.Event()

    def request(self, reason: str, *, signum: int | None = None) -> None:
        """Ask the run to stop; a later request changes nothing."""
        if self.reason is not None:
            return
        self.reason, self.signal = reason, signum
        self._changed()

    def fail(self, error: FatalError) -> None:
        """Ask the run to stop on a fatal error: it raises ``error`` (the first one) at its end."""
        if self.error is not None:
            return
        self.error = error
        if self.reason is None:
            self.reason = " ".join(str(error).split()) or type(error).__name__
        log.error("stopping: %s", " ".join(str(error).split()) or type(error).__name__)
        self._changed()

    def hurry(self, reason: str) -> None:
        """Ask the run to stop at once: no request or upload in flight is waited for."""
        if self.reason is None:
            self.reason = reason
        if not self.urgent:
            self.urgent = True
            self._hurried.set()
            self._changed()

    async def hurried(self) -> None:
        """Return once :meth:`hurry` was called."""
        await self._hurried.wait()

    def subscribe(self, subscriber: Callable[[StopRequest], None]) -> Callable[[], None]:
        """Call ``subscriber(self)`` on every change (at once if a stop was asked already).

        Returns the function that unsubscribes.
        """
        self._subscribers.append(subscriber)
        if self.reason is not None:
            subscriber(self)
        return lambda: self._subscribers.remove(subscriber)

    def _changed(self) -> None:
        for subscriber in list(self._subscribers):
            subscriber(self)


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """While the body runs, SIGINT and SIGTERM request a clean stop.

    A second SIGINT asks to stop at once (:meth:`StopRequest.hurry`); a third cancels the
    task that entered the block. Must be entered inside the running loop (a coroutine), on
    the main thread.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.signal is None:
            log.warning("%s: stopping; landing what was fetched and saving the state", name)
            stop.request(name, signum=signum)
            stop.signal = signum  # also when something else asked first: the exit code says so
            return
        if signum != signal.SIGINT:
            return
        if not stop.urgent:
            log.warning("%s again: stopping at once", name)
            stop.hurry(name)
        elif task is not None:
            log.warning("%s a third time: cancelled", name)
            task.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
        installed.append(signum)
    try:
        yield stop
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
