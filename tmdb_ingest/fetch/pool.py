"""The fetch pool: ``workers`` tasks that take ids, fetch them, and hand the results over.

The ids come from one shared iterator (the producer needs no task of its own: taking the
next id is a plain ``next()``), so nothing waits in a queue that a stop would have to
drain. Each worker, while the deadline lets it take ids:

1. takes a place for one movie in the lander (back-pressure: it waits while too much is
   waiting for upload);
2. takes the next id and fetches it (retries end at ``deadline.stop_taking_at``);
3. hands the result to :meth:`Lander.accept`, with no suspension point after the fetch.

The workers run in an ``asyncio.TaskGroup`` inside ``asyncio.timeout_at(cancel_at)``:
at the hard stop everything still running is cancelled (those ids stay unresolved, and
the next invocation fetches them). A fatal error in one worker (a rejected key) cancels
the others and is raised as itself, not as an exception group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator

from tmdb_ingest.errors import FatalError
from tmdb_ingest.fetch.client import TmdbClient
from tmdb_ingest.land.lander import Lander
from tmdb_ingest.run.deadline import Deadline

__all__ = ["fetch_all"]

log = logging.getLogger("tmdb_ingest")


async def _worker(
    client: TmdbClient, ids: Iterator[str], deadline: Deadline, lander: Lander
) -> None:
    while deadline.taking():
        await lander.reserve()
        imdb_id = next(ids, None) if deadline.taking() else None
        if imdb_id is None:
            lander.release()
            return
        started = deadline.now()
        result = await client.fetch(imdb_id, retry_until=deadline.stop_taking_at)
        lander.accept(result)  # no await between the fetch and the hand-over: see lander.py
        if result.attempts == 1:
            deadline.request_took(deadline.now() - started)


async def fetch_all(
    client: TmdbClient, ids: Iterable[str], *, workers: int, deadline: Deadline, lander: Lander
) -> None:
    """Fetch ``ids`` with ``workers`` concurrent tasks until done or the deadline.

    Returns when every id was taken and answered, or when the deadline stopped the pool.
    Raises the first :class:`~tmdb_ingest.errors.FatalError` a worker met.
    """
    iterator = iter(ids)
    try:
        async with asyncio.timeout_at(deadline.cancel_at) as timeout:

            def reschedule() -> None:
                timeout.reschedule(deadline.cancel_at)

            unsubscribe = deadline.on_change(reschedule)
            try:
                async with asyncio.TaskGroup() as group:
                    for n in range(workers):
                        group.create_task(
                            _worker(client, iterator, deadline, lander), name=f"fetch-{n}"
                        )
            except* FatalError as errors:
                raise errors.exceptions[0] from None
            finally:
                unsubscribe()
    except TimeoutError:
        log.info(
            "%s: requests still in flight were cancelled; the next run redoes them",
            deadline.reason or "time budget",
        )
