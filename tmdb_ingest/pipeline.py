"""The producer/consumer core: ids -> paced, concurrent TMDB requests -> 100-movie files.

::

    ids -> producer -> bounded queue -> fetch workers (limiter + retries) -> batcher
        -> upload queue -> uploaders -> sink (manifest, then data file)
                                     '-> report chunks, checkpoint, report (under _state)

Memory is bounded by the queues (workers wait while too many batches are waiting for
upload), not by the number of ids. With a time budget the run stops taking ids early
enough to finish what is in flight, cancels what is still running at the hard stop
(those ids stay unresolved, never failed), flushes, saves, and returns in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from tmdb_ingest.batching import Batch, Batcher, FileFormat
from tmdb_ingest.errors import FatalError, SinkError
from tmdb_ingest.ids import is_imdb_id
from tmdb_ingest.ratelimit import Limiter
from tmdb_ingest.settings import Settings
from tmdb_ingest.sinks import LocalSink, S3Sink, Sink
from tmdb_ingest.state import ReportEntry, RunState, derive_run_id, in_shard
from tmdb_ingest.summary import Progress, Snapshot, Summary
from tmdb_ingest.tmdb import FetchResult, Outcome, TmdbClient

__all__ = ["Progress", "Snapshot", "Summary", "ingest", "ingest_csv"]

log = logging.getLogger("tmdb_ingest")


def _budget_marks(settings: Settings, start: float) -> tuple[float | None, float | None]:
    """(soft stop, hard stop): stop taking ids; cancel what still runs."""
    budget = settings.time_budget
    if budget is None:
        return None, None
    flush_reserve = min(max(1.0, 0.1 * budget), 10.0)
    hard = start + budget - flush_reserve
    in_flight_reserve = min(settings.connect_timeout + settings.request_timeout, 0.3 * budget)
    return hard - in_flight_reserve, hard


def open_sink(settings: Settings) -> S3Sink | LocalSink:
    """The sink the settings name, to be entered with ``async with``."""
    settings.require_sink()
    if settings.bucket is not None:
        return S3Sink(
            settings.bucket,
            check_prefix=f"{settings.state_root}/",
            endpoint_url=settings.s3_endpoint_url,
            max_pool_connections=settings.upload_concurrency * 2 + 4,
        )
    assert settings.out_dir is not None
    return LocalSink(settings.out_dir)


async def ingest(
    ids: Iterable[str],
    settings: Settings,
    *,
    sink: Sink | None = None,
    session: aiohttp.ClientSession | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
    clock: Callable[[], float] = time.monotonic,
    started_at: float | None = None,
    limiter: Limiter | None = None,
) -> Summary:
    """Fetch every id from TMDB and land it in the sink, exactly once; return the summary.

    ``ids`` are IMDb title ids (duplicates are ignored; malformed ones are reported as
    ``failed`` and never sent). Only the ids of ``settings.shard`` are processed. Ids
    already landed or reported by an earlier invocation of the same run are skipped.
    ``sink`` and ``session`` can be injected; otherwise they are made from ``settings``
    and closed on return. ``limiter`` replaces the default :class:`RateLimiter` (for
    benchmarks and tests: anything with ``acquire()``, ``pause(seconds)`` and
    ``max_rate``). Raises :class:`~tmdb_ingest.errors.FatalError` (with the summary so
    far as ``.summary``) when the key is rejected or the sink fails.
    """
    start = clock() if started_at is None else started_at
    settings.require_credentials()
    if sink is None:
        settings.require_sink()
    valid: list[str] = []
    malformed: list[str] = []
    for imdb_id in sorted(set(ids)):
        (valid if is_imdb_id(imdb_id) else malformed).append(imdb_id)
    day = today or dt.datetime.now(dt.UTC).date()
    run_id = settings.run_id or derive_run_id(valid, settings, day)
    shard_ids = in_shard(valid, settings.shard)
    shard_malformed = in_shard(malformed, settings.shard)

    async with AsyncExitStack() as stack:
        if sink is None:
            opened: Sink = await stack.enter_async_context(open_sink(settings))
            sink = opened
        await sink.check()
        state = await RunState.open(
            sink,
            prefix=settings.prefix,
            run_id=run_id,
            shard=settings.shard,
            today=day,
            state_root=settings.state_root,
            file_format=FileFormat.from_settings(settings),
            selected=len(shard_ids) + len(shard_malformed),
        )
        run = _Run(settings, state, clock=clock, start=start, progress=progress, limiter=limiter)
        return await run.execute(shard_ids, shard_malformed, session=session)
    raise AssertionError("unreachable")  # pragma: no cover (mypy: async with may swallow)


async def ingest_csv(csv: str | os.PathLike[str], settings: Settings, **kwargs: Any) -> Summary:
    """Select ids from movies.csv (a path or ``s3://`` URI) and :func:`ingest` them."""
    from tmdb_ingest.selection import select_ids_async

    start = kwargs.get("clock", time.monotonic)()
    settings.require_credentials()
    if kwargs.get("sink") is None:
        settings.require_sink()
    selection = await select_ids_async(
        csv,
        genres=settings.genres,
        votes_above=settings.votes_above,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    log.info(
        "selected %d ids from %s (%d rows, %d malformed ids skipped)",
        len(selection.ids),
        selection.source,
        selection.rows,
        selection.invalid_ids,
    )
    kwargs.setdefault("started_at", start)
    return await ingest(selection.ids, settings, **kwargs)


class _Run:
    """One invocation's pipeline; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        state: RunState,
        *,
        clock: Callable[[], float],
        start: float,
        progress: Progress | None,
        limiter: Limiter | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.state = state
        self.clock = clock
        self.start = start
        self.progress = progress
        self.soft_stop, self.hard_stop = _budget_marks(settings, start)
        self.stopping = False
        self.fatal: FatalError | None = None
        self.batcher = Batcher(settings.batch_size)
        self.namer = state.layout.new_namer()
        self.outcomes: list[ReportEntry] = []
        self.uploads: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self.upload_room = asyncio.Event()
        self.upload_room.set()
        self.max_waiting_uploads = settings.upload_concurrency * 2
        self.fetched = self.not_found = self.failed = self.batches = 0
        self.seen_fetched = self.seen_not_found = self.seen_failed = 0
        self.client: TmdbClient | None = None

    # -- stopping -----------------------------------------------------------------------

    def should_stop(self) -> bool:
        if self.stopping:
            return True
        if self.soft_stop is not None and self.clock() >= self.soft_stop:
            self.stopping = True
        return self.stopping

    def _fail(self, error: FatalError) -> None:
        if self.fatal is None:
            self.fatal = error
            log.error("stopping: %s", error)
        self.stopping = True

    # -- the pipeline --------------------------------------------------------------------

    async def execute(
        self, shard_ids: list[str], malformed: list[str], *, session: aiohttp.ClientSession | None
    ) -> Summary:
        state = self.state
        resolved = state.resolved_ids()
        todo = [i for i in shard_ids if i not in resolved]
        bad = [i for i in malformed if i not in resolved]
        self.total = len(shard_ids) + len(malformed)
        self.skipped = self.total - len(todo) - len(bad)
        log.info(
            "run %s shard %s: %d selected, %d done before, %d to fetch",
            state.layout.run_id,
            state.layout.shard,
            self.total,
            self.skipped,
            len(todo),
        )
        for imdb_id in bad:
            self._record(FetchResult(imdb_id, Outcome.FAILED, reason="malformed IMDb id; not sent"))

        client = TmdbClient.from_settings(self.settings, session=session, limiter=self.limiter)
        self.client = client
        uploaders = [
            asyncio.create_task(self._uploader(), name=f"uploader-{n}")
            for n in range(self.settings.upload_concurrency)
        ]
        ticker = asyncio.create_task(self._tick(), name="progress")
        try:
            async with client:
                todo = await self._first(client, todo)
                await self._fetch_all(client, todo)
        finally:
            ticker.cancel()
            self._flush()
            for _ in uploaders:
                self.uploads.put_nowait(None)
            await self._finish_uploads(uploaders)
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        report = None
        try:
            report = await state.save()
        except FatalError as exc:
            self._fail(exc)
        if self.progress is not None:
            self.progress.update(self._snapshot())
        summary = self._summary(shard_ids, malformed, report)
        log.info("summary %s", summary.as_dict())
        if self.fatal is not None:
            self.fatal.summary = summary
            raise self.fatal
        return summary

    async def _finish_uploads(self, uploaders: list[asyncio.Task[None]]) -> None:
        # With a budget, uploads still running when it is nearly spent are cancelled: a
        # manifest without its data file only means those ids are fetched again next time.
        timeout = None
        if self.settings.time_budget is not None:
            timeout = max(0.0, self.start + self.settings.time_budget - 0.5 - self.clock())
        _done, pending = await asyncio.wait(uploaders, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*uploaders, return_exceptions=True)
        if pending:
            log.warning("time budget: %d uploads cancelled; the next run redoes them", len(pending))

    async def _first(self, client: TmdbClient, todo: list[str]) -> list[str]:
        """The first request goes alone: a rejected key or a wrong URL costs one request."""
        if not todo or self.should_stop():
            return todo
        try:
            result = await client.check(todo[0], retry_until=self.soft_stop)
        except FatalError as exc:
            self._fail(exc)
            return []
        if result is None:
            return todo
        self._record(result)
        return todo[1:]

    async def _fetch_all(self, client: TmdbClient, todo: list[str]) -> None:
        if not todo:
            return
        ids: asyncio.Queue[str | None] = asyncio.Queue(maxsize=self.settings.concurrency * 2)
        workers = [
            asyncio.create_task(self._worker(client, ids), name=f"fetch-{n}")
            for n in range(self.settings.concurrency)
        ]
        producer = asyncio.create_task(self._produce(todo, ids, len(workers)), name="producer")
        tasks = [producer, *workers]
        timeout = None if self.hard_stop is None else max(0.0, self.hard_stop - self.clock())
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            # Hard stop: what is still running is cancelled; those ids stay unresolved and
            # the next invocation fetches them. Handling a result never awaits, so a
            # cancelled worker cannot lose a fetched body.
            self.stopping = True
            log.info("time budget: cancelling %d tasks still running", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _produce(self, todo: list[str], ids: asyncio.Queue[str | None], workers: int) -> None:
        for imdb_id in todo:
            if self.should_stop():
                break
            await ids.put(imdb_id)
        for _ in range(workers):
            await ids.put(None)  # workers that stopped early leave room: see _worker

    async def _worker(self, client: TmdbClient, ids: asyncio.Queue[str | None]) -> None:
        while True:
            await self.upload_room.wait()
            imdb_id = await ids.get()
            if imdb_id is None:
                return
            if self.should_stop() or not await self._fetch_one(client, imdb_id):
                break
        # Stopping: keep draining so that the producer is never stuck on a full queue.
        while await ids.get() is not None:
            pass

    async def _fetch_one(self, client: TmdbClient, imdb_id: str) -> bool:
        """Fetch and record one id; False when the run must stop."""
        try:
            result = await client.fetch(imdb_id, retry_until=self.soft_stop)
        except FatalError as exc:
            self._fail(exc)
            return False
        self._record(result)
        return not self.stopping

    def _record(self, result: FetchResult) -> None:
        # Never awaits: see the cancellation note in _fetch_all.
        if result.outcome is Outcome.FETCHED:
            assert result.body is not None
            self.seen_fetched += 1
            batch = self.batcher.add(result.imdb_id, result.body)
            if batch is not None:
                self._enqueue(("batch", batch))
        elif result.outcome in (Outcome.NOT_FOUND, Outcome.FAILED):
            if result.outcome is Outcome.NOT_FOUND:
                self.seen_not_found += 1
            else:
                self.seen_failed += 1
                log.warning("failed %s: %s", result.imdb_id, result.reason)
            self.outcomes.append(
                ReportEntry(result.imdb_id, result.outcome.value, result.reason or "")
            )
            if len(self.outcomes) >= self.settings.batch_size:
                chunk, self.outcomes = self.outcomes, []
                self._enqueue(("outcomes", chunk))

    def _enqueue(self, item: tuple[str, Any]) -> None:
        self.uploads.put_nowait(item)
        if self.uploads.qsize() >= self.max_waiting_uploads:
            self.upload_room.clear()  # workers wait: memory stays bounded

    def _flush(self) -> None:
        partial = self.batcher.flush()
        if partial is not None:
            self._enqueue(("batch", partial))
        if self.outcomes:
            chunk, self.outcomes = self.outcomes, []
            self._enqueue(("outcomes", chunk))

    async def _uploader(self) -> None:
        while True:
            item = await self.uploads.get()
            if self.uploads.qsize() < self.max_waiting_uploads:
                self.upload_room.set()
            if item is None:
                return
            if isinstance(self.fatal, SinkError):
                continue  # the sink is failing: leave the rest to the next invocation
            kind, payload = item
            name = self.namer.next()
            try:
                if kind == "batch":
                    batch: Batch = payload
                    key = await self.state.write_batch(
                        name, batch.ids, batch.encode(self.state.layout.format)
                    )
                    self.batches += 1
                    self.fetched += len(batch)
                    log.debug("landed %s (%d movies)", key, len(batch))
                else:
                    entries: list[ReportEntry] = payload
                    await self.state.write_outcomes(name, entries)
                    self.not_found += sum(e.outcome == "not_found" for e in entries)
                    self.failed += sum(e.outcome == "failed" for e in entries)
            except FatalError as exc:
                self._fail(exc)

    async def _tick(self) -> None:
        if self.progress is None:
            return
        while True:
            self.progress.update(self._snapshot())
            await asyncio.sleep(0.5)

    def _snapshot(self) -> Snapshot:
        stats = self.client.stats if self.client is not None else None
        return Snapshot(
            total=self.total - self.skipped,
            fetched=self.seen_fetched,
            not_found=self.seen_not_found,
            failed=self.seen_failed,
            requests=stats.requests if stats else 0,
            throttled=stats.throttled if stats else 0,
            elapsed_s=self.clock() - self.start,
        )

    def _summary(self, shard_ids: list[str], malformed: list[str], report: str | None) -> Summary:
        resolved = self.state.resolved_ids()
        done = (
            self.fatal is None
            and all(i in resolved for i in shard_ids)
            and all(i in resolved for i in malformed)
        )
        stats = self.client.stats if self.client is not None else None
        return Summary(
            run_id=self.state.layout.run_id,
            shard=str(self.state.layout.shard),
            selected=self.total,
            skipped=self.skipped,
            fetched=self.fetched,
            not_found=self.not_found,
            failed=self.failed,
            batches=self.batches,
            requests=stats.requests if stats else 0,
            retries=stats.retries if stats else 0,
            throttled=stats.throttled if stats else 0,
            elapsed_s=round(self.clock() - self.start, 3),
            done=done,
            report=report,
            error=" ".join(str(self.fatal).split()) if self.fatal is not None else None,
        )
