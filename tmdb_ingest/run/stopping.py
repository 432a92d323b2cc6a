"""Clean stops: a :class:`StopRequest` asks a running :func:`~tmdb_ingest.ingest` to stop.

The run then takes no new id, lets the requests in flight finish for about as long as a
request takes (then cancels them: those ids stay unresolved), lands the partial file,
saves its state and returns its summary (``done: false``): the same command resumes,
exactly once. :func:`stop_on_signals` turns SIGINT and SIGTERM into such a request; a
second SIGINT cancels the run at once (the state on disk is still safe: exactly once
rests on manifests and data files, never on the flush).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

__all__ = ["StopRequest", "stop_on_signals"]

log = logging.getLogger("tmdb_ingest")


class StopRequest:
    """A one-way switch: once requested, every subscriber hears the reason once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signal: int | None = None
        self._subscribers: list[Callable[[str], None]] = []

    def request(self, reason: str, *, signum: int | None = None) -> None:
        """Ask the run to stop; later requests change nothing."""
        if self.reason is not None:
            return
        self.reason, self.signal = reason, signum
        for subscriber in list(self._subscribers):
            subscriber(reason)

    def subscribe(self, subscriber: Callable[[str], None]) -> Callable[[], None]:
        """Call ``subscriber(reason)`` on a request (at once if already requested).

        Returns the function that unsubscribes.
        """
        self._subscribers.append(subscriber)
        if self.reason is not None:
            subscriber(self.reason)
        return lambda: self._subscribers.remove(subscriber)


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """While the body runs, SIGINT and SIGTERM request a clean stop.

    A second SIGINT cancels the task that entered the block at once. Must be entered
    inside the running loop (a coroutine), on the main thread.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.reason is not None:
            if signum == signal.SIGINT and task is not None:
                log.warning("%s again: stopping at once", name)
                task.cancel()
            return
        log.warning("%s: stopping; landing what was fetched and saving the state", name)
        stop.request(name, signum=signum)

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
        installed.append(signum)
    try:
        yield stop
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
