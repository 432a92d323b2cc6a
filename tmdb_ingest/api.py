"""The producer/consumer core: ids -> paced, concurrent TMDB requests -> 100-movie files.

::

    ids -> fetch pool (fetch/pool.py: workers, limiter, retries) -> lander (land/lander.py:
        batcher, report chunks, uploaders) -> run state (run/state.py: manifest, data file)
                  ^ run/deadline.py: when to stop taking ids, when to cancel, what to keep
                  ^ run/stopping.py: the one way to ask the run to stop, with a reason

This module only puts the parts together for one invocation: it opens the sink, takes
the run's lease, opens the run state, sends the first request alone (a rejected key or a
wrong URL costs one request), runs the pool inside the lander's uploads, saves the state
and returns the :class:`~tmdb_ingest.summary.Summary`. Every background task of the run
(lease renewal and watch, uploaders, progress) lives in the run's task group
(run/tasks.py). Memory is bounded by the lander's places, not by the number of ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import aiohttp

from tmdb_ingest.config.settings import Settings
from tmdb_ingest.errors import FatalError, RunBusy, TmdbIngestError
from tmdb_ingest.fetch.client import TmdbClient
from tmdb_ingest.fetch.outcomes import FetchResult, Outcome
from tmdb_ingest.fetch.policy import ClientPolicy
from tmdb_ingest.fetch.pool import fetch_all
from tmdb_ingest.fetch.rate.limiter import Limiter
from tmdb_ingest.ids import is_imdb_id
from tmdb_ingest.lake.index import IndexRecorder, LakeIndex
from tmdb_ingest.land.formats import FileFormat
from tmdb_ingest.land.lake_format import check_lake_format
from tmdb_ingest.land.lander import Lander
from tmdb_ingest.land.opening import open_sink
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.run.deadline import Deadline
from tmdb_ingest.run.layout import LakeLayout
from tmdb_ingest.run.lease import FencedSink, Lease
from tmdb_ingest.run.state import FoundRun, RunState, derive_run_id, find_run, in_shard
from tmdb_ingest.run.stopping import StopRequest
from tmdb_ingest.run.tasks import RunTasks
from tmdb_ingest.summary import Progress, Snapshot, Summary, marked

if TYPE_CHECKING:
    from tmdb_ingest.selection.saved import RunSelection

__all__ = ["Progress", "Snapshot", "Summary", "ingest", "ingest_csv", "open_sink"]

log = logging.getLogger("tmdb_ingest")
T = TypeVar("T")

_MALFORMED = "malformed IMDb id; not sent"


async def ingest(
    ids: Iterable[str],
    settings: Settings,
    *,
    sink: Sink | None = None,
    session: aiohttp.ClientSession | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
    started_at: float | None = None,
    limiter: Limiter | None = None,
    stop: StopRequest | None = None,
    holder: str | None = None,
    new_only: bool = False,
) -> Summary:
    """Fetch every id from TMDB and land it in the sink, exactly once; return the summary.

    ``ids`` are IMDb title ids (duplicates are ignored; malformed ones are reported as
    ``failed`` and never sent). Only the ids of ``settings.shard`` are processed. Ids
    already landed or reported by an earlier invocation of the same run are skipped.
    ``sink`` and ``session`` can be injected; otherwise they are made from ``settings``
    and closed on return. ``limiter`` replaces the one ``settings.rate`` names (any
    :class:`~tmdb_ingest.fetch.rate.limiter.Limiter`). ``started_at`` (on the event loop's clock)
    is when the time budget began; default: now. ``stop`` (a
    :class:`~tmdb_ingest.run.stopping.StopRequest`) stops the run cleanly when requested: no
    new ids, the partial file landed, the state saved, ``done: false``.

    One invocation at a time holds a run and shard (a lease in the sink, see
    :mod:`tmdb_ingest.run.lease`; ``holder`` names this one in it). When another holds it and
    keeps it alive, :class:`~tmdb_ingest.errors.RunBusy` is raised (within about half the
    lease TTL, with a ``busy`` summary) before anything is sent or written; a dead
    holder's lease is taken over once it expires. Raises
    :class:`~tmdb_ingest.errors.FatalError` (with the summary so far as ``.summary``)
    when the key is rejected, TMDB is not there, the sink fails or the lease is lost.

    ``new_only``: skip the ids the lake already holds from any other run (read from the
    lake index, see :mod:`tmdb_ingest.lake.index`); they count as ``skipped``, and the
    summary's ``new`` says how many were not in the lake.
    """
    if isinstance(ids, str | bytes):  # a str is an Iterable[str] too: of its characters
        raise TypeError(f"ids must be an iterable of IMDb ids, not a string: [{ids!r}]?")
    if started_at is None:
        started_at = asyncio.get_running_loop().time()  # opening the sink counts too
    options = _Options(session, progress, today, started_at, limiter, stop, holder, new_only)
    settings.require_credentials()
    if sink is None:
        settings.require_sink()
    async with AsyncExitStack() as stack:
        sink = await _checked_sink(stack, sink, settings)
        return await _ingest_into(ids, settings, sink, options)
    raise AssertionError("unreachable")  # pragma: no cover (mypy: async with may swallow)


async def ingest_csv(
    csv: str | os.PathLike[str],
    settings: Settings,
    *,
    sink: Sink | None = None,
    session: aiohttp.ClientSession | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
    started_at: float | None = None,
    limiter: Limiter | None = None,
    stop: StopRequest | None = None,
    holder: str | None = None,
    new_only: bool = False,
) -> Summary:
    """Select ids from movies.csv (a path or ``s3://`` URI) and :func:`ingest` them.

    The keywords are :func:`ingest`'s. The first invocation of a run saves its selection
    with the run (once it holds the run's lease); the next ones read it instead of the CSV
    (see :mod:`tmdb_ingest.selection.saved`). A CSV that changed under an explicit run id
    raises :class:`~tmdb_ingest.errors.InputError`, before any request.
    """
    from tmdb_ingest.selection.saved import resolve_selection

    if started_at is None:
        started_at = asyncio.get_running_loop().time()
    settings.require_credentials()
    day = today or dt.datetime.now(dt.UTC).date()
    options = _Options(session, progress, day, started_at, limiter, stop, holder, new_only)
    if sink is None:
        settings.require_sink()
    async with AsyncExitStack() as stack:
        sink = await _checked_sink(stack, sink, settings)
        chosen = await resolve_selection(csv, settings, sink, day=day)
        if chosen.resumed:
            log.info("run %s: %d ids, as saved with the run", chosen.run_id, len(chosen.ids))
        else:
            log.info(
                "selected %d ids from %s (%d rows, %d malformed ids skipped)",
                *(len(chosen.ids), chosen.source, chosen.rows or 0, chosen.invalid_ids or 0),
            )
        run_settings = settings.replace(run_id=chosen.run_id)
        return await _ingest_into(chosen.ids, run_settings, sink, options, selection=chosen)
    raise AssertionError("unreachable")  # pragma: no cover (mypy: async with may swallow)


@dataclass(frozen=True, slots=True)
class _Options:
    """:func:`ingest`'s keywords, other than the sink."""

    session: aiohttp.ClientSession | None
    progress: Progress | None
    today: dt.date | None
    started_at: float
    limiter: Limiter | None
    stop: StopRequest | None
    holder: str | None
    new_only: bool = False


async def _checked_sink(stack: AsyncExitStack, sink: Sink | None, settings: Settings) -> Sink:
    """``sink``, or the one ``settings`` name opened on ``stack``; checked either way."""
    if sink is None:
        opened: Sink = await stack.enter_async_context(open_sink(settings))
        sink = opened
    await sink.check()
    return sink


@dataclass(frozen=True, slots=True)
class _Work:
    """The ids of one invocation: its run and shard, and which of them are malformed."""

    run_id: str
    day: dt.date
    ids: list[str]  # valid ids of the shard, sorted
    malformed: list[str]  # malformed ids of the shard: reported once, never sent

    @classmethod
    def of(cls, ids: Iterable[str], settings: Settings, today: dt.date | None) -> _Work:
        valid: list[str] = []
        malformed: list[str] = []
        for imdb_id in sorted(set(ids)):
            (valid if is_imdb_id(imdb_id) else malformed).append(imdb_id)
        day = today or dt.datetime.now(dt.UTC).date()
        run_id = settings.run_id or derive_run_id(valid, settings, day)
        return cls(
            run_id, day, in_shard(valid, settings.shard), in_shard(malformed, settings.shard)
        )

    @property
    def selected(self) -> int:
        return len(self.ids) + len(self.malformed)


async def _ingest_into(
    ids: Iterable[str],
    settings: Settings,
    sink: Sink,
    options: _Options,
    *,
    selection: RunSelection | None = None,
) -> Summary:
    """:func:`ingest` into an opened and checked ``sink``.

    ``selection``: where the ids came from (:func:`ingest_csv`); what of it is to be saved
    is written once the lease is held, through the fenced sink. Every task of the run
    lives in its :class:`~tmdb_ingest.run.tasks.RunTasks`.
    """
    stop = options.stop or StopRequest()
    deadline = Deadline(
        settings.time_budget,
        start=options.started_at,
        max_request=ClientPolicy.from_settings(settings).attempt_timeout,
        stop=stop,
    )
    work = _Work.of(ids, settings, options.today)
    found = await _found_run(sink, settings, work.run_id, selection)
    async with RunTasks(stop) as tasks, AsyncExitStack() as stack:
        try:
            lease = await _hold_lease(
                stack, tasks, sink, settings,
                key=found.lake.lease_key(work.run_id, settings.shard),
                run_id=work.run_id, holder=options.holder, deadline=deadline,
            )  # fmt: skip
        except _StoppedWaiting as stopped:
            # Asked to stop while another invocation's lease was waited out: nothing was
            # sent or written, and the run is exactly where it was.
            log.warning("%s while waiting for the lease; nothing was done", stopped.reason)
            return _nothing_done(work, settings, deadline)
        except RunBusy as exc:
            raise _with_summary(exc, _nothing_done(work, settings, deadline)) from None
        fenced = FencedSink(sink, lease)  # nothing is written once the lease is lost
        # one lake, one format: checked before any request (and before anything is written)
        await check_lake_format(fenced, found.lake, FileFormat.from_settings(settings))
        if selection is not None:
            await selection.save(fenced)
        state = await RunState.open(
            fenced, prefix=settings.prefix, run_id=work.run_id, shard=settings.shard,
            today=work.day, file_format=FileFormat.from_settings(settings),
            selected=work.selected, found=found,
        )  # fmt: skip
        state.index = IndexRecorder(
            LakeLayout.of(settings.prefix, settings.state_prefix),  # the lake's, not the run's
            settings.language,
            settings.append_to_response,
            today=lambda: work.day,  # the day this invocation fetches (a resumed run's is later)
        )
        client = TmdbClient.from_settings(
            settings, session=options.session, limiter=options.limiter
        )
        held = await _held_by_the_lake(fenced, settings, work.run_id) if options.new_only else None
        run = _Invocation(settings, state, deadline, client, tasks, held=held)
        with _long_lived_objects_frozen():
            async with _progress_ticker(options.progress, run, tasks):
                return await run.execute(work)
    raise AssertionError("unreachable")  # pragma: no cover (mypy: async with may swallow)


async def _held_by_the_lake(sink: Sink, settings: Settings, run_id: str) -> set[str]:
    """The ids in the lake's data files, those of run ``run_id`` left out (``--new-only``)."""
    files = await LakeIndex(sink, LakeLayout.of(settings.prefix, settings.state_prefix)).files()
    mine = f"{run_id}-"
    held = {i for f in files if mine not in f.name for i, _ in f.movies}
    log.info("the lake holds %d movies from other runs; --new-only skips them", len(held))
    return held


async def _found_run(
    sink: Sink, settings: Settings, run_id: str, selection: RunSelection | None
) -> FoundRun:
    """Where ``run_id``'s state is: as the selection found it, else looked up now."""
    found = selection.found if selection is not None else None
    if found is not None and found.run_id == run_id:
        return found
    return await find_run(sink, LakeLayout.of(settings.prefix, settings.state_prefix), run_id)


_frozen_runs = 0
_frozen_lock = threading.Lock()


@contextlib.contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the objects alive now (modules, botocore's service models) out of the GC's scans.

    Measured: a full collection over them pauses the event loop for about 20 ms, and a
    request granted just before such a pause reaches TMDB 20 ms late: enough to put
    ``rate + 1`` requests into one second at the server (the window margin is 20 ms).
    With them frozen the longest delay from grant to arrival was 6 ms. Unfrozen on the
    way out, so a warm Lambda container collects them as usual between invocations.
    ``gc.freeze`` is process-wide: with runs side by side in one process, the first one
    in freezes and the last one out unfreezes.
    """
    global _frozen_runs
    with _frozen_lock:
        if _frozen_runs == 0:
            gc.freeze()
        _frozen_runs += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_runs -= 1
            if _frozen_runs == 0:
                gc.unfreeze()


async def _hold_lease(
    stack: AsyncExitStack,
    tasks: RunTasks,
    sink: Sink,
    settings: Settings,
    *,
    key: str,
    run_id: str,
    holder: str | None,
    deadline: Deadline,
) -> Lease:
    """Take the run and shard's lease (at ``key``) for the rest of ``stack``, renewed in
    ``tasks``; a lost lease asks the run to stop.

    Raises :class:`~tmdb_ingest.errors.RunBusy` when another invocation holds it, and
    :class:`_StoppedWaiting` when a stop is asked while a live holder's lease is waited
    out; nothing has been sent or written then.
    """
    hold = Lease(
        sink,
        key,
        ttl=settings.lease_ttl,
        skew=settings.lease_skew,
        run_id=run_id,
        shard=settings.shard,
        holder=holder,
    ).hold(tasks)
    # Waiting out a dead holder's lease (up to TTL + skew) must not outlast the budget.
    # (At least a second: a free lease is taken at once, even with the budget spent.)
    end = deadline.end
    until = None if end is None else max(end - deadline.flush_reserve(), deadline.now() + 1.0)
    stop = deadline.stop_request
    try:
        async with asyncio.timeout_at(until):
            lease = await _unless_stopped(stop, lambda: stack.enter_async_context(hold))
    except TimeoutError:
        raise RunBusy(
            f"run {run_id} shard {settings.shard} is held by another invocation whose "
            "lease outlasts this invocation's time budget; nothing was done"
        ) from None

    async def stop_when_lost() -> None:
        await lease.lost.wait()
        stop.request("the lease was lost")

    tasks.create_task(stop_when_lost(), name="the lease watch")
    return lease


class _StoppedWaiting(Exception):
    """A stop was requested while the lease was waited for."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _unless_stopped(stop: StopRequest, work: Callable[[], Awaitable[T]]) -> T:
    """Await ``work()`` unless ``stop`` is requested first (then it is not started, or
    cancelled) and raise :class:`_StoppedWaiting`. (A lease it took meanwhile is released
    by its stack.)"""
    if stop.reason is not None:
        raise _StoppedWaiting(stop.reason)
    requested = asyncio.Event()
    unsubscribe = stop.subscribe(lambda _: requested.set())
    task = asyncio.ensure_future(work())
    waiter = asyncio.ensure_future(requested.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        unsubscribe()
        waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if requested.is_set():
        raise _StoppedWaiting(stop.reason or "stopped")
    return task.result()


def _nothing_done(work: _Work, settings: Settings, deadline: Deadline) -> Summary:
    """The summary of an invocation that sent and wrote nothing."""
    return Summary(
        run_id=work.run_id,
        shard=str(settings.shard),
        selected=work.selected,
        skipped=0,
        fetched=0,
        not_found=0,
        failed=0,
        batches=0,
        requests=0,
        retries=0,
        throttled=0,
        elapsed_s=round(deadline.now() - deadline.start, 3),
        done=False,
        report=None,
    )


E = TypeVar("E", bound=TmdbIngestError)


def _with_summary(exc: E, summary: Summary) -> E:
    """``exc`` carrying ``summary``, its ``busy`` or ``error`` set (:func:`marked`)."""
    exc.summary = marked(summary, exc)
    return exc


class _Invocation:
    """One invocation of one run and shard: the parts, put together."""

    def __init__(
        self,
        settings: Settings,
        state: RunState,
        deadline: Deadline,
        client: TmdbClient,
        tasks: RunTasks,
        *,
        held: set[str] | None = None,
    ) -> None:
        self.settings = settings
        self.held = held  # --new-only: ids the lake holds from other runs (None: not asked)
        self.new: int | None = None
        self.state = state
        self.deadline = deadline
        self.stop = deadline.stop_request
        self.client = client
        self.tasks = tasks
        self.lander = Lander(
            state,
            deadline,
            batch_size=settings.batch_size,
            upload_concurrency=settings.upload_concurrency,
        )
        self.total = 0
        self.skipped = 0
        self.retried_failed = 0

    async def execute(self, work: _Work) -> Summary:
        """Fetch and land ``work``, save the state; the summary, or the fatal error with it."""
        state, lander = self.state, self.lander
        done_before, accounted = state.done_ids(), state.resolved_ids()
        if self.held is not None:
            held = self.held - done_before
            self.held = {i for i in work.ids if i in held}
            self.new = len(work.ids) - len(self.held)
            done_before = done_before | self.held
        todo = [i for i in work.ids if i not in done_before]
        self.retried_failed = sum(1 for i in todo if i in accounted)  # failed before
        bad = [i for i in work.malformed if i not in accounted]  # reported once, never sent
        self.total = work.selected
        self.skipped = self.total - len(todo) - len(bad)
        log.info(
            "run %s shard %s: %d selected, %d done before, %d to fetch (%d failed before)",
            *(state.layout.run_id, state.layout.shard, self.total, self.skipped, len(todo)),
            self.retried_failed,
        )
        # a stop sends nothing new: workers waiting for a rate slot give up
        unsubscribe = self.stop.subscribe(lambda _: self.client.stop_sending())
        try:
            async with self.client, lander.uploading(self.tasks):
                for imdb_id in bad:
                    await lander.reserve()
                    lander.accept(FetchResult(imdb_id, Outcome.FAILED, reason=_MALFORMED))
                todo = await self._first(todo)
                await fetch_all(
                    self.client,
                    todo,
                    workers=self.settings.concurrency,
                    deadline=self.deadline,
                    lander=lander,
                )
        except FatalError as exc:
            self.stop.fail(exc)
        finally:
            unsubscribe()
        report = None
        try:
            report = await state.save()
        except FatalError as exc:
            self.stop.fail(exc)
        summary = self.summary(work, report)
        log.debug("summary %s", summary.to_json())
        if self.stop.error is not None:
            raise _with_summary(self.stop.error, summary)
        return summary

    async def _first(self, todo: list[str]) -> list[str]:
        """Before any id, one request proves the URL and the key (GET /configuration).

        A rejected key or a wrong URL costs one request, not one per id; when the
        deadline comes first, no id is taken.
        """
        if not todo or not self.deadline.taking():
            return todo
        proven = await self.client.check(retry_until=self.deadline.stop_taking_at)
        return todo if proven else []

    def snapshot(self) -> Snapshot:
        counts, stats = self.lander.counts, self.client.stats
        return Snapshot(
            total=self.total - self.skipped,
            fetched=counts.seen_fetched,
            not_found=counts.seen_not_found,
            failed=counts.seen_failed,
            requests=stats.requests,
            throttled=stats.throttled,
            elapsed_s=self.deadline.now() - self.deadline.start,
        )

    def summary(self, work: _Work, report: str | None) -> Summary:
        resolved = self.state.resolved_ids() | (self.held or set())
        done = self.stop.error is None and all(i in resolved for i in (*work.ids, *work.malformed))
        counts, stats = self.lander.counts, self.client.stats
        return Summary(
            run_id=self.state.layout.run_id,
            shard=str(self.state.layout.shard),
            selected=self.total,
            skipped=self.skipped,
            fetched=counts.fetched,
            not_found=counts.not_found,
            failed=counts.failed,
            batches=counts.batches,
            requests=stats.requests,
            retries=stats.retries,
            throttled=stats.throttled,
            elapsed_s=round(self.deadline.now() - self.deadline.start, 3),
            done=done,
            report=report,
            retried_failed=self.retried_failed,
            rate_found=round(self.client.limiter.rate, 1) if self.settings.rate.adaptive else None,
            new=self.new,
        )


@contextlib.asynccontextmanager
async def _progress_ticker(
    progress: Progress | None, run: _Invocation, tasks: RunTasks
) -> AsyncIterator[None]:
    """Send a snapshot to ``progress`` twice a second while the body runs (a task of the
    run's group), and once at the end."""
    if progress is None:
        yield
        return

    async def tick() -> None:
        while True:
            progress.update(run.snapshot())
            await asyncio.sleep(0.5)

    task = tasks.create_task(tick(), name="the progress display")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        progress.update(run.snapshot())
