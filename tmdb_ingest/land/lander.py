"""The lander: fetched results -> data files and report chunks -> the run state.

::

    accept(result) --sync--> batcher (batch_size) --> DataFile job ---\\
                         '-> outcomes (batch_size) -> ReportChunk job --> upload queue
                                                                          -> uploaders
                                                                          -> RunState

:meth:`Lander.accept` is synchronous on purpose: the fetch pool hands a fetched body
over with no suspension point between the end of the request and the hand-over, so a
cancellation (time budget, signal) can never fall between them and lose a body that
TMDB already sent. ``tests/test_lander.py`` fails if an ``await`` is put there.

Memory is bounded by a semaphore of movies held (the open batch and the files waiting
for or in upload): the pool takes a place (:meth:`Lander.reserve`) before it starts an
id, and the place is given back when the movie's file has been written.

The uploaders are tasks of the run's task group (:mod:`tmdb_ingest.run.tasks`). A write
that fails, or an upload that raises anything else (a bug), asks the run to stop on a
fatal error (through the deadline's stop request); the jobs not yet written are dropped
(their ids stay unresolved: the next invocation fetches them again), so nothing waits for
an upload that will never come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tmdb_ingest.errors import FatalError, InternalError
from tmdb_ingest.fetch.outcomes import FetchResult, Outcome
from tmdb_ingest.lake.index import tmdb_ids_of
from tmdb_ingest.land.formats import Batch, Batcher
from tmdb_ingest.run.deadline import Deadline
from tmdb_ingest.run.state import ReportEntry, RunState
from tmdb_ingest.run.tasks import RunTasks, TaskStarter

__all__ = ["DataFile", "LandedCounts", "Lander", "ReportChunk"]

log = logging.getLogger("tmdb_ingest")


@dataclass(frozen=True, slots=True)
class DataFile:
    """Upload job: one data file of fetched movies."""

    batch: Batch


@dataclass(frozen=True, slots=True)
class ReportChunk:
    """Upload job: ids that are not in a data file, and why."""

    entries: list[ReportEntry]


UploadJob = DataFile | ReportChunk


@dataclass(slots=True)
class LandedCounts:
    """What has been written (for the summary) and what has been accepted (for progress)."""

    fetched: int = 0
    not_found: int = 0
    failed: int = 0
    batches: int = 0
    seen_fetched: int = 0
    seen_not_found: int = 0
    seen_failed: int = 0


class Lander:
    """Collects results into files and uploads them with ``upload_concurrency`` tasks.

    Use :meth:`uploading` around the fetching: on the way out it flushes the partial
    file and the outcomes and waits for the uploads (until ``deadline.end`` less the time
    kept to save the state, or a hurried stop). A write that finally fails stops the run
    (``deadline.stop_request.fail``; the remaining jobs are dropped: their ids stay
    unresolved and the next invocation decides from what landed).
    """

    def __init__(
        self,
        state: RunState,
        deadline: Deadline,
        *,
        batch_size: int,
        upload_concurrency: int = 4,
    ) -> None:
        self._state = state
        self._deadline = deadline
        self._batch_size = batch_size
        self._upload_concurrency = upload_concurrency
        self._batcher = Batcher(batch_size)
        self._outcomes: list[ReportEntry] = []
        self._jobs: asyncio.Queue[UploadJob] = asyncio.Queue()
        self._namer = state.layout.new_namer()
        # the open batch, two waiting files per uploader, and the ones being uploaded
        self._room = asyncio.Semaphore(batch_size * (3 * upload_concurrency + 1))
        self.counts = LandedCounts()
        self._stop = deadline.stop_request
        self._write_failed = False
        self._uploaders_left = 0
        self._uploads_running = 0
        self._no_uploaders = asyncio.Event()

    # -- the hand-over (synchronous) ------------------------------------------------------

    async def reserve(self) -> None:
        """Wait for a place for one more movie (back-pressure on the fetch pool)."""
        await self._room.acquire()

    def release(self) -> None:
        """Give back a place taken by :meth:`reserve` for an id that was not fetched."""
        self._room.release()

    def accept(self, result: FetchResult) -> None:
        """Take one result; never suspends. An ``unresolved`` result only frees its place."""
        counts = self.counts
        if result.outcome is Outcome.FETCHED:
            assert result.body is not None
            counts.seen_fetched += 1
            batch = self._batcher.add(result.imdb_id, result.body)
            if batch is not None:
                self._jobs.put_nowait(DataFile(batch))
            return
        self._room.release()
        if result.outcome is Outcome.UNRESOLVED:
            return
        if result.outcome is Outcome.NOT_FOUND:
            counts.seen_not_found += 1
        else:
            counts.seen_failed += 1
            log.warning("failed %s: %s", result.imdb_id, result.reason)
        self._outcomes.append(ReportEntry(result.imdb_id, result.outcome, result.reason or ""))
        if len(self._outcomes) >= self._batch_size:
            self._jobs.put_nowait(ReportChunk(self._outcomes))
            self._outcomes = []

    def flush(self) -> None:
        """Queue the partial data file and the outcomes not yet queued."""
        partial = self._batcher.flush()
        if partial is not None:
            self._jobs.put_nowait(DataFile(partial))
        if self._outcomes:
            self._jobs.put_nowait(ReportChunk(self._outcomes))
            self._outcomes = []

    # -- the uploads ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def uploading(self, tasks: TaskStarter | None = None) -> AsyncIterator[Lander]:
        """Run the uploaders (in ``tasks``, the run's task group) around the body; flush and
        wait for them on the way out.

        Whatever ended the body (done, time budget, a fatal error) what was fetched is
        landed; only a hurried stop (a second Ctrl-C) or a cancellation skips the wait.
        """
        async with contextlib.AsyncExitStack() as stack:
            if tasks is None:
                tasks = await stack.enter_async_context(RunTasks(self._stop))
            uploaders = [
                tasks.create_task(self._uploader(), name=f"uploader {n}")
                for n in range(self._upload_concurrency)
            ]
            self._uploaders_left = len(uploaders)
            try:
                try:
                    yield self
                except Exception:
                    self.flush()
                    await self._drain()
                    raise
                self.flush()
                await self._drain()
            finally:
                for task in uploaders:
                    task.cancel()
                await asyncio.gather(*uploaders, return_exceptions=True)

    async def _drain(self) -> None:
        end = self._deadline.end
        # keep time for the checkpoint and the report after the last data file
        until = None if end is None else end - self._deadline.flush_reserve() / 2
        waits = [
            asyncio.ensure_future(self._jobs.join()),
            asyncio.ensure_future(self._stop.hurried()),
            asyncio.ensure_future(self._no_uploaders.wait()),  # a bug stopped every one
        ]
        try:
            async with asyncio.timeout_at(until):
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            log.warning(
                "time budget: uploads still running and %d queued were cancelled; "
                "the next run redoes them",
                self._jobs.qsize(),
            )
            return
        finally:
            for wait in waits:
                wait.cancel()
        if (
            waits[0] not in done
            and self._stop.urgent
            and (self._uploads_running or self._jobs.qsize())
        ):
            log.warning(
                "%s: uploads in flight and %d queued were not waited for; the next run redoes them",
                *(self._stop.reason, self._jobs.qsize()),
            )

    async def _uploader(self) -> None:
        try:
            while True:
                job = await self._jobs.get()
                try:
                    if not self._write_failed:
                        self._uploads_running += 1
                        try:
                            await self._upload(job)
                        finally:
                            self._uploads_running -= 1
                except FatalError as exc:
                    self._fail(exc)
                except Exception as exc:  # a bug: the run stops on it, it never hangs
                    log.debug("uploading failed", exc_info=True)
                    what = "a data file" if isinstance(job, DataFile) else "report entries"
                    self._fail(
                        InternalError(f"uploading {what} failed: {type(exc).__name__}: {exc}")
                    )
                finally:
                    if isinstance(job, DataFile):
                        for _ in range(len(job.batch)):
                            self._room.release()
                    self._jobs.task_done()
        finally:
            self._uploaders_left -= 1
            if self._uploaders_left == 0:
                self._no_uploaders.set()

    def _fail(self, error: FatalError) -> None:
        self._write_failed = True  # the jobs still queued are dropped
        self._stop.fail(error)

    async def _upload(self, job: UploadJob) -> None:
        name = self._namer.next()
        started = self._deadline.now()
        counts = self.counts
        if isinstance(job, DataFile):
            batch = job.batch
            data = batch.encode(self._state.layout.format)
            tmdb_ids = tmdb_ids_of(batch.bodies) if self._state.index is not None else None
            key = await self._state.write_batch(name, batch.ids, data, tmdb_ids=tmdb_ids)
            counts.batches += 1
            counts.fetched += len(batch)
            log.debug("landed %s (%d movies)", key, len(batch))
        else:
            await self._state.write_outcomes(name, job.entries)
            counts.not_found += sum(e.outcome is Outcome.NOT_FOUND for e in job.entries)
            counts.failed += sum(e.outcome is Outcome.FAILED for e in job.entries)
        self._deadline.upload_took(self._deadline.now() - started)
