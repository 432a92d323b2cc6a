"""``refresh``: fetch again the movies of the lake that TMDB changed, at the cost of what
changed.

::

    refresh lease (one refresh of a lake at a time)
      -> the lake index (a record per data file; rebuilt once for a lake from before it)
      -> the change list from the day after the bookmark to --until (change_list.py)
      -> the changed movies of the lake, each with the language and appended responses
         it was first fetched with -> one run per such setting (api._ingest_into: exactly
         once, its own lease, budget, resume, report)
      -> the bookmark moved to --until, only once every run is done

A refresh run's id is ``refresh-{since}-{until}-{digest}`` (the digest covers what decides
the data), so the same command, run again, resumes it: what landed is skipped. The
bookmark (``{state}/_lake/refresh/bookmark.json``) names the last day whose changes the
lake has; ``{state}/_lake/refresh/last.json`` keeps the last refresh's summary, done or
not, for ``tmdb-ingest status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tmdb_ingest.config.settings import Settings, Shard
from tmdb_ingest.errors import FatalError, RunBusy
from tmdb_ingest.fetch.client import ClientPolicy
from tmdb_ingest.fetch.rate.limiter import Limiter, make_limiter
from tmdb_ingest.lake.change_list import ChangeListClient, ChangeListStopped, read_changes
from tmdb_ingest.lake.index import IndexFile, LakeIndex, rebuild
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.run.deadline import Deadline
from tmdb_ingest.run.layout import LakeLayout
from tmdb_ingest.run.lease import FencedSink
from tmdb_ingest.run.stopping import StopRequest
from tmdb_ingest.summary import Progress, Summary

__all__ = ["RefreshSummary", "read_bookmark", "refresh"]

log = logging.getLogger("tmdb_ingest")

_REFRESH_RUN = "refresh"  # the lease's run id: one refresh of a lake at a time
# Seconds of budget a compaction may take at the end (a whole-catalogue segment: ~2 s).
_COMPACT_TIME = 10.0


@dataclass(frozen=True, slots=True)
class RefreshSummary(Summary):
    """A run's summary plus what the change list said.

    ``since`` and ``until``: the days read (ISO dates; None when there was nothing to
    read); ``pages``: change-list pages read; ``changed``: TMDB ids in the list;
    ``in_lake``: of them, movies of the lake (``selected`` of the refresh).
    """

    since: str | None = None
    until: str | None = None
    pages: int = 0
    changed: int = 0
    in_lake: int = 0


@dataclass(frozen=True, slots=True)
class _Setting:
    """What decides a movie's data besides its id."""

    language: str | None
    append: tuple[str, ...]


async def read_bookmark(sink: Sink, keys: LakeLayout) -> dict[str, Any] | None:
    """The lake's refresh bookmark (``until``: the last day whose changes it has), or None."""
    raw = await sink.get(keys.bookmark_key)
    if raw is None:
        return None
    try:
        bookmark = orjson.loads(raw)
        dt.date.fromisoformat(bookmark["until"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise FatalError(f"the refresh bookmark {sink.uri(keys.bookmark_key)} is damaged") from None
    return dict(bookmark)


async def read_last_refresh(sink: Sink, keys: LakeLayout) -> dict[str, Any] | None:
    """The summary of the lake's last refresh invocation, or None."""
    raw = await sink.get(keys.last_refresh_key)
    try:
        return None if raw is None else dict(orjson.loads(raw))
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None


async def refresh(
    settings: Settings,
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
    sink: Sink | None = None,
    session: aiohttp.ClientSession | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
    started_at: float | None = None,
    limiter: Limiter | None = None,
    stop: StopRequest | None = None,
    holder: str | None = None,
) -> RefreshSummary:
    """Fetch again every movie of the lake that TMDB changed; return the summary.

    Reads TMDB's change list for the days from ``since`` (default: the day after the
    bookmark; the first time, the earliest fetch date in the lake index) to ``until``
    (default: today, UTC), and lands the lake's changed movies as a run does (exactly
    once, ``batch_size`` a file, under the refresh's start date), each with the language
    and appended responses it was first fetched with. The bookmark moves to ``until``
    only when every changed movie is landed or reported (``done``). The same call again
    resumes a refresh that stopped.

    One refresh of a lake at a time: :class:`~tmdb_ingest.errors.RunBusy` (with a
    ``busy`` summary) when another holds it, before anything is sent or written.
    :class:`~tmdb_ingest.errors.FatalError` (with the summary so far) when TMDB rejects
    the key, refuses a window of the change list, or the sink fails.
    """
    from tmdb_ingest.api import _checked_sink, _hold_lease, _StoppedWaiting
    from tmdb_ingest.run.tasks import RunTasks

    loop = asyncio.get_running_loop()
    started_at = loop.time() if started_at is None else started_at
    settings.require_credentials()
    if sink is None:
        settings.require_sink()
    day = today or dt.datetime.now(dt.UTC).date()
    until = until or day
    stop = stop or StopRequest()
    limiter = limiter or make_limiter(settings.rate)
    keys = LakeLayout.of(settings.prefix, settings.state_prefix)
    deadline = Deadline(
        settings.time_budget,
        start=started_at,
        max_request=ClientPolicy.from_settings(settings).attempt_timeout,
        stop=stop,
    )
    base = _empty(deadline)
    async with AsyncExitStack() as stack:
        sink = await _checked_sink(stack, sink, settings)
        tasks = await stack.enter_async_context(RunTasks(stop))  # the refresh lease's renewal
        try:
            lease = await _hold_lease(
                stack, tasks, sink, settings, key=keys.refresh_lease_key,
                run_id=_REFRESH_RUN, holder=holder, deadline=deadline,
            )  # fmt: skip
        except RunBusy as exc:
            exc.summary = dataclasses.replace(base, busy=True)
            raise
        except _StoppedWaiting as stopped:
            log.warning("%s while waiting for the refresh lease; nothing was done", stopped.reason)
            return base
        fenced = FencedSink(sink, lease)
        refresher = _Refresh(settings, fenced, keys, deadline, day, limiter, session)
        summary = await refresher.run(since, until, progress=progress, stop=stop, holder=holder)
        return summary
    raise AssertionError("unreachable")  # pragma: no cover (mypy: async with may swallow)


def _empty(deadline: Deadline, **fields: Any) -> RefreshSummary:
    values: dict[str, Any] = {
        "run_id": "",
        "shard": str(Shard()),
        "selected": 0,
        "skipped": 0,
        "fetched": 0,
        "not_found": 0,
        "failed": 0,
        "batches": 0,
        "requests": 0,
        "retries": 0,
        "throttled": 0,
        "elapsed_s": round(deadline.now() - deadline.start, 3),
        "done": False,
        "report": None,
    }
    values.update(fields)
    return RefreshSummary(**values)


class _Refresh:
    """One refresh invocation, under the refresh lease."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        keys: LakeLayout,
        deadline: Deadline,
        day: dt.date,
        limiter: Limiter,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.keys = keys
        self.deadline = deadline
        self.day = day
        self.limiter = limiter
        self.session = session
        self.index = LakeIndex(sink, keys)

    async def _lake(self) -> list[IndexFile]:
        built = await rebuild(self.sink, self.keys, self.settings.prefix, compact=False, once=True)
        if built.indexed_now:
            log.info("index rebuild: %d data files indexed", built.indexed_now)
        return await self.index.files()

    async def run(
        self,
        since: dt.date | None,
        until: dt.date,
        *,
        progress: Progress | None,
        stop: StopRequest,
        holder: str | None,
    ) -> RefreshSummary:
        deadline = self.deadline
        client = ChangeListClient(
            self.settings.tmdb_url,
            api_key=self.settings.api_key,
            access_token=self.settings.access_token,
            concurrency=self.settings.concurrency,
            policy=ClientPolicy.from_settings(self.settings),
            limiter=self.limiter,
            session=self.session,
        )
        bookmark = await read_bookmark(self.sink, self.keys)
        if since is None and bookmark is not None:
            since = dt.date.fromisoformat(bookmark["until"]) + dt.timedelta(days=1)
        # The lake's index is read first, then the change list (no task outside the run's group).
        files = await self._lake()
        if since is None:
            if not files:
                log.info("the lake is empty: nothing to refresh")
                return await self._finish(_empty(deadline, done=True), None, until)
            since = min(dt.date.fromisoformat(f.fetched) for f in files)
        if since > until:
            log.info("the lake has every change up to %s: nothing to read", until)
            summary = _empty(deadline, done=True, since=str(since), until=str(until))
            return await self._finish(summary, None, until)
        async with client:
            try:
                # Before the change list, as before any id: the URL is proven TMDB's v3 API.
                if not await client.check(retry_until=deadline.stop_taking_at):
                    raise ChangeListStopped
                changes = await read_changes(
                    client, since, until, retry_until=deadline.stop_taking_at
                )
            except ChangeListStopped:
                summary = _empty(deadline, since=str(since), until=str(until))
                summary = self._with_requests(summary, client)
                return await self._finish(summary, None, None)
            except FatalError as exc:
                summary = self._with_requests(
                    _empty(deadline, since=str(since), until=str(until)), client
                )
                exc.summary = dataclasses.replace(summary, error=" ".join(str(exc).split()))
                with contextlib.suppress(FatalError):
                    await self._finish(exc.summary, None, None)
                raise
        groups = _changed_movies(files, changes.ids, self.settings.language)
        in_lake = sum(len(ids) for ids in groups.values())
        log.info(
            "refresh %s..%s: %d pages, %d changed ids, %d of them in the lake",
            since, until, changes.pages, len(changes.ids), in_lake,
        )  # fmt: skip
        summary = _empty(
            deadline,
            since=str(since),
            until=str(until),
            pages=changes.pages,
            changed=len(changes.ids),
            in_lake=in_lake,
        )
        summary = self._with_requests(summary, client)
        runs: list[Summary] = []
        fatal: FatalError | None = None
        for setting, ids in sorted(
            groups.items(), key=lambda g: (g[0].language or "", g[0].append)
        ):
            try:
                runs.append(await self._land(since, until, setting, ids, progress, stop, holder))
            except FatalError as exc:
                if isinstance(exc.summary, Summary):
                    runs.append(exc.summary)
                fatal = exc
                break
            if not runs[-1].done:
                break
        done = fatal is None and len(runs) == len(groups) and all(r.done for r in runs)
        summary = _combined(summary, runs, done=done, deadline=deadline)
        left = None if deadline.end is None else deadline.end - deadline.now()
        stopped = deadline.reason is not None
        if fatal is None and not stopped and (left is None or left > _COMPACT_TIME):
            # Compact what was read and what landed: the next reader reads one segment.
            with contextlib.suppress(FatalError):
                await self.index.compact()
        if fatal is not None:
            fatal.summary = dataclasses.replace(summary, error=" ".join(str(fatal).split()))
            with contextlib.suppress(FatalError):
                await self._finish(fatal.summary, None, None)
            raise fatal
        return await self._finish(summary, since, until if done else None)

    def _with_requests(self, summary: RefreshSummary, client: ChangeListClient) -> RefreshSummary:
        stats = client.stats
        return dataclasses.replace(
            summary, requests=stats.requests, retries=stats.retries, throttled=stats.throttled
        )

    async def _land(
        self,
        since: dt.date,
        until: dt.date,
        setting: _Setting,
        ids: list[str],
        progress: Progress | None,
        stop: StopRequest,
        holder: str | None,
    ) -> Summary:
        from tmdb_ingest.api import _ingest_into, _Options

        settings = self.settings.replace(
            language=setting.language,
            append_to_response=setting.append,
            shard=Shard(),
            run_id=refresh_run_id(since, until, setting, self.settings),
        )
        options = _Options(
            session=self.session,
            progress=progress,
            today=self.day,
            started_at=self.deadline.start,
            limiter=self.limiter,
            stop=stop,
            holder=holder,
        )
        return await _ingest_into(ids, settings, self.sink, options)

    async def _finish(
        self, summary: RefreshSummary, since: dt.date | None, until: dt.date | None
    ) -> RefreshSummary:
        """Record the invocation (for status); move the bookmark when ``until`` is given."""
        summary = dataclasses.replace(
            summary, elapsed_s=round(self.deadline.now() - self.deadline.start, 3)
        )
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if until is not None and summary.done:
            bookmark = {"until": until.isoformat(), "since": str(since or ""), "at": now}
            bookmark["run_id"] = summary.run_id
            await self.sink.put(self.keys.bookmark_key, orjson.dumps(bookmark))
        await self.sink.put(
            self.keys.last_refresh_key, orjson.dumps({"at": now, **summary.as_dict()})
        )
        return summary


def refresh_run_id(since: dt.date, until: dt.date, setting: _Setting, settings: Settings) -> str:
    """The id of the refresh run for these days and this setting: the same command resumes."""
    what = [setting.language, list(setting.append), settings.batch_size]
    if settings.format != "json" or settings.compress:
        what += [settings.format, settings.compress]
    digest = hashlib.sha256(orjson.dumps(what)).hexdigest()[:8]
    return f"refresh-{since:%Y%m%d}-{until:%Y%m%d}-{digest}"


def _changed_movies(
    files: Iterable[IndexFile], changed: set[int], language: str | None = None
) -> dict[_Setting, list[str]]:
    """The lake's movies whose TMDB id changed, by the setting each was first fetched with.

    ``language`` (the refresh's ``--language``) stands in for the language of files whose
    record was rebuilt from their data (which do not say it).
    """
    first: dict[str, _Setting] = {}
    for f in files:  # key order: a movie's first data file comes first
        setting = _Setting(f.language if f.language_known else language, f.append)
        for imdb_id, tmdb_id in f.movies:
            if tmdb_id is not None and tmdb_id in changed and imdb_id not in first:
                first[imdb_id] = setting
    groups: dict[_Setting, list[str]] = {}
    for imdb_id, setting in first.items():
        groups.setdefault(setting, []).append(imdb_id)
    return {s: sorted(ids) for s, ids in groups.items()}


def _combined(
    summary: RefreshSummary, runs: list[Summary], *, done: bool, deadline: Deadline
) -> RefreshSummary:
    """The refresh's summary: the change list's part plus its runs' counts."""

    def total(name: str) -> int:
        return sum(int(getattr(r, name)) for r in runs)

    reports = [r.report for r in runs if r.report]
    return dataclasses.replace(
        summary,
        run_id=",".join(r.run_id for r in runs),
        selected=summary.in_lake,
        skipped=total("skipped"),
        fetched=total("fetched"),
        not_found=total("not_found"),
        failed=total("failed"),
        batches=total("batches"),
        requests=summary.requests + total("requests"),
        retries=summary.retries + total("retries"),
        throttled=summary.throttled + total("throttled"),
        retried_failed=total("retried_failed"),
        elapsed_s=round(deadline.now() - deadline.start, 3),
        done=done,
        report=reports[0] if len(reports) == 1 else (",".join(reports) or None),
    )
