"""Run identity and the run state that makes resuming exactly once.

Where each piece lives is :mod:`tmdb_ingest.run.layout`'s business (data files under the
data prefix; ``run.json``, manifests, outcome chunks, checkpoint and report under the
state root).

State lives outside the data prefix, so a glob over the data prefix sees only movies.
Runs started before that kept their state in ``{prefix}/_state``: a run whose
``run.json`` is found only there (:func:`find_run`) keeps using that place until it is
done, for all of its state.

Exactly once, also across SIGKILL: before a data file is written, its manifest (the ids
it will hold) is written under ``batches/``. On resume, a manifest counts only if its
data file exists (with any of the data extensions, so a run resumed in another format
still counts what it landed), so "landed" is read from what actually landed: a crash
between the manifest and the data file leaves a manifest without data, whose ids are
fetched again under a new name; a crash after the data file leaves both, and those ids
are skipped. Each invocation names its files with its own token, so no two invocations
write the same key. Report entries are written in whole chunks; an id is in a chunk or
not. The checkpoint only saves work (fewer reads on resume): losing it loses nothing but
the shard's selection size and times, which ``tmdb-ingest status`` shows.

Two invocations of the same run *and* shard must not run at the same time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tmdb_ingest.config.settings import Settings, Shard
from tmdb_ingest.errors import PreconditionFailed, SinkError
from tmdb_ingest.fetch.outcomes import Outcome
from tmdb_ingest.land.formats import JSON_ARRAY, FileFormat
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.run.layout import LakeLayout, RunLayout, run_stamp, stamp_of

__all__ = [
    "FoundRun",
    "ReportEntry",
    "RunState",
    "derive_run_id",
    "find_run",
    "shard_of",
]

log = logging.getLogger("tmdb_ingest")


def shard_of(imdb_id: str, count: int) -> int:
    """The shard (0..count-1) of an id: a stable hash, the same on every machine and run."""
    digest = hashlib.blake2b(imdb_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def in_shard(ids: Iterable[str], shard: Shard) -> list[str]:
    """The ids of ``shard``, in their given order."""
    if shard.count == 1:
        return list(ids)
    return [i for i in ids if shard_of(i, shard.count) == shard.index]


def derive_run_id(ids: Sequence[str], settings: Settings, day: dt.date) -> str:
    """A run id from what decides the data, and the UTC date: the same command resumes.

    It covers the selection (the ids, genres, votes), the batch size, the language, the
    appended responses and the file format; not the rate, the concurrency or the time
    budget, which change how fast, not what lands.
    """
    h = hashlib.sha256()
    what = [settings.genres, settings.votes_above, settings.batch_size]
    if settings.language or settings.append_to_response:
        what += [settings.language, list(settings.append_to_response)]
    if settings.format != "json" or settings.compress:
        what += [settings.format, settings.compress]
    h.update(orjson.dumps(what))
    for imdb_id in ids:
        h.update(imdb_id.encode())
        h.update(b"\n")
    return f"run-{day:%Y%m%d}-{h.hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One id that is not in a data file, and why."""

    imdb_id: str
    outcome: Outcome  # NOT_FOUND or FAILED
    reason: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"imdb_id": self.imdb_id, "outcome": self.outcome.value, "reason": self.reason}
        )


def _name_of(key: str, prefix: str, suffix: str) -> str:
    return key[len(prefix) : -len(suffix)] if key.endswith(suffix) else key[len(prefix) :]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class FoundRun:
    """Where a run's state is, and its ``run.json`` (None: the run has not started)."""

    lake: LakeLayout
    """The lake, its ``state_root`` the place that holds the run (legacy for old runs)."""
    run_id: str
    meta: dict[str, Any] | None


async def find_run(sink: Sink, lake: LakeLayout, run_id: str) -> FoundRun:
    """Find ``run_id`` in ``lake``'s state root, else in the legacy place.

    A run found nowhere is placed in ``lake``'s state root (``meta`` None). Raises
    SinkError when ``run.json`` is damaged.
    """
    for place in lake.places():
        raw = await sink.get(place.meta_key(run_id))
        if raw is not None:
            break
    else:
        return FoundRun(lake, run_id, None)
    if place != lake:
        log.info(
            "run %s keeps its state in the old place %s/ (new runs use %s/)",
            *(run_id, place.state_root, lake.state_root),
        )
    try:
        meta = orjson.loads(raw)
        meta["date"] = str(meta["date"])
        dt.datetime.strptime(meta["date"], "%Y/%m/%d")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise SinkError(f"run state {sink.uri(place.meta_key(run_id))} is damaged") from None
    return FoundRun(place, run_id, meta)


async def create_run(sink: Sink, found: FoundRun, today: dt.date) -> FoundRun:
    """``found`` with its ``run.json``, created now (dated ``today``) if it has none.

    Created once, with If-None-Match: shards starting on either side of midnight share
    one date.
    """
    if found.meta is not None:
        return found
    lake, run_id = found.lake, found.run_id
    meta = {"run_id": run_id, "date": f"{today:%Y/%m/%d}", "started": _now()}
    meta["prefix"] = lake.prefix
    meta["stamp"] = run_stamp(dt.datetime.now(dt.UTC))  # what its data file names begin with
    try:
        await sink.put(lake.meta_key(run_id), orjson.dumps(meta), if_none_match=True)
    except PreconditionFailed:
        again = await find_run(sink, lake, run_id)
        if again.meta is None:
            raise SinkError(f"run state of {run_id} vanished while it was read") from None
        return again
    return FoundRun(lake, run_id, meta)


@dataclass
class RunState:
    """What a run and shard has done so far: landed batches and reported ids.

    Also what ``tmdb-ingest status`` shows and the data cannot say: how many ids the shard
    has (``selected``, given by the invocation that opened it), when its first invocation
    started and when the latest one saved (``started``, ``last_invocation``, ISO 8601).
    """

    layout: RunLayout
    sink: Sink
    landed: dict[str, list[str]] = field(default_factory=dict)
    reported: dict[str, list[ReportEntry]] = field(default_factory=dict)
    orphaned: set[str] = field(default_factory=set)
    """Manifests whose data file never landed: their ids are fetched again."""
    meta: dict[str, Any] = field(default_factory=dict)  # run.json
    selected: int | None = None
    started: str | None = None
    last_invocation: str | None = None
    index: Any = None  # an IndexRecorder (tmdb_ingest.lake.index): records each data file

    @classmethod
    async def open(
        cls,
        sink: Sink,
        *,
        prefix: str,
        run_id: str,
        shard: Shard,
        today: dt.date,
        state_root: str | None = None,
        file_format: FileFormat = JSON_ARRAY,
        selected: int | None = None,
        found: FoundRun | None = None,
    ) -> RunState:
        """Load the state of ``run_id``/``shard`` from the sink, creating the run if new.

        ``state_root``: the folder of every run's state (default: ``_state`` beside
        ``prefix``); a run found only in the legacy place keeps its state there.
        ``file_format``: how this invocation writes data files. ``selected``: how many ids
        the shard has (recorded in the checkpoint for ``tmdb-ingest status``). ``found``:
        what :func:`find_run` already returned for this run, so as not to read it again
        (a run created since is still found: its ``run.json`` is created only once).
        """
        if found is None:
            found = await find_run(sink, LakeLayout.of(prefix, state_root), run_id)
        found = await create_run(sink, found, today)
        assert found.meta is not None
        layout = RunLayout(
            found.lake, run_id, shard, found.meta["date"], file_format, stamp_of(found.meta)
        )
        state = await cls.read(sink, layout, meta=found.meta)
        state.started = state.started or _now()
        if selected is not None:
            state.selected = selected
        return state

    @classmethod
    async def read(
        cls, sink: Sink, layout: RunLayout, *, meta: dict[str, Any] | None = None
    ) -> RunState:
        """Load the state of ``layout``'s run and shard, writing nothing."""
        state = cls(layout, sink, meta=meta or {})
        await state._load()
        return state

    async def _load(self) -> None:
        layout, sink = self.layout, self.sink
        raw = await sink.get(layout.checkpoint_key)
        if raw is not None:
            try:
                saved = orjson.loads(raw)
                self.landed = {k: list(v) for k, v in saved["landed"].items()}
                self.reported = {
                    k: [ReportEntry(e[0], Outcome(e[1]), e[2]) for e in v]
                    for k, v in saved["reported"].items()
                }
                self.orphaned = set(saved["dead"])  # the checkpoint's name for them
                selected = saved.get("selected")
                self.selected = selected if isinstance(selected, int) else None
                self.started = saved.get("started")
                self.last_invocation = saved.get("last_invocation")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                # The checkpoint only saves reads: rebuild from the manifests instead.
                self.landed, self.reported, self.orphaned = {}, {}, set()

        manifests = [
            _name_of(k, layout.manifests_prefix, ".json")
            async for k in sink.iter_keys(layout.manifests_prefix)
        ]
        unknown = [n for n in manifests if n not in self.landed and n not in self.orphaned]
        if unknown:
            # data files of any format count: a run may be resumed with another --format
            existing = {layout.data_name(k) async for k in sink.iter_keys(layout.data_prefix)}
            bodies = await _gather_limited([sink.get(layout.manifest_key(n)) for n in unknown])
            for name, body in zip(unknown, bodies, strict=True):
                if name in existing and body is not None:
                    self.landed[name] = list(orjson.loads(body))
                else:
                    self.orphaned.add(name)  # manifest written, data never landed

        chunks = [
            _name_of(k, layout.outcomes_prefix, ".jsonl")
            async for k in sink.iter_keys(layout.outcomes_prefix)
        ]
        new_chunks = [c for c in chunks if c not in self.reported]
        bodies = await _gather_limited([sink.get(layout.outcomes_key(c)) for c in new_chunks])
        for name, body in zip(new_chunks, bodies, strict=True):
            if body is None:
                continue
            entries = []
            for line in body.splitlines():
                if line.strip():
                    e = orjson.loads(line)
                    entries.append(ReportEntry(e["imdb_id"], Outcome(e["outcome"]), e["reason"]))
            self.reported[name] = entries

    def landed_ids(self) -> set[str]:
        return {i for ids in self.landed.values() for i in ids}

    def latest_outcomes(self) -> dict[str, ReportEntry]:
        """Each reported id's latest outcome, ids that landed since left out.

        Chunk names sort by invocation (they start with the invocation's start time), so
        a later invocation's outcome replaces an earlier one's.
        """
        latest: dict[str, ReportEntry] = {}
        for name in sorted(self.reported):
            for entry in self.reported[name]:
                latest[entry.imdb_id] = entry
        landed = self.landed_ids()
        return {i: e for i, e in latest.items() if i not in landed}

    def done_ids(self) -> set[str]:
        """Ids no invocation fetches again: landed, or not found (TMDB said so: final).

        An id whose latest outcome is ``failed`` is not done: the next invocation of the
        run tries it again.
        """
        final = {i for i, e in self.latest_outcomes().items() if e.outcome is Outcome.NOT_FOUND}
        return self.landed_ids() | final

    def resolved_ids(self) -> set[str]:
        """Every id already in a data file or in the report (with any outcome)."""
        return self.landed_ids() | set(self.latest_outcomes())

    async def write_batch(
        self,
        name: str,
        ids: list[str],
        data: bytes,
        *,
        tmdb_ids: Sequence[int | None] | None = None,
    ) -> str:
        """Land one data file: manifest first, then its lake index record (``tmdb_ids``:
        the TMDB id of each movie), then the data. Returns the data key."""
        # If-None-Match: no key is ever overwritten, so a second writer cannot replace one.
        await self.sink.put(self.layout.manifest_key(name), orjson.dumps(ids), if_none_match=True)
        key = self.layout.data_key(name)
        if self.index is not None:
            # Before the data: a data file never lands without its record; a record counts
            # only once its data file exists (see tmdb_ingest.lake.index).
            await self.index.write(self.sink, name, key, ids, tmdb_ids or [None] * len(ids))
        await self.sink.put(
            key, data, content_type=self.layout.format.content_type, if_none_match=True
        )
        self.landed[name] = ids
        return key

    async def write_outcomes(self, name: str, entries: list[ReportEntry]) -> None:
        """Record ids that will not be in a data file (one atomic chunk)."""
        body = b"".join(e.to_json() + b"\n" for e in entries)
        await self.sink.put(
            self.layout.outcomes_key(name),
            body,
            content_type="application/x-ndjson",
            if_none_match=True,
        )
        self.reported[name] = entries

    async def save(self) -> str | None:
        """Write the checkpoint and the merged report; return the report's URI, or None."""
        self.last_invocation = _now()
        checkpoint = {
            "run_id": self.layout.run_id,
            "shard": str(self.layout.shard),
            "landed": self.landed,
            "reported": {
                k: [[e.imdb_id, e.outcome.value, e.reason] for e in v]
                for k, v in self.reported.items()
            },
            "dead": sorted(self.orphaned),  # kept: older invocations read it
            "selected": self.selected,
            "started": self.started,
            "last_invocation": self.last_invocation,
        }
        await self.sink.put(self.layout.checkpoint_key, orjson.dumps(checkpoint))
        entries = sorted(self.latest_outcomes().values(), key=lambda e: e.imdb_id)
        if not entries:
            return None
        body = b"".join(e.to_json() + b"\n" for e in entries)
        await self.sink.put(self.layout.report_key, body, content_type="application/x-ndjson")
        return self.sink.uri(self.layout.report_key)


async def _gather_limited(
    coros: Sequence[Coroutine[Any, Any, bytes | None]], limit: int = 16
) -> list[bytes | None]:
    semaphore = asyncio.Semaphore(limit)

    async def run(coro: Coroutine[Any, Any, bytes | None]) -> bytes | None:
        async with semaphore:
            return await coro

    return list(await asyncio.gather(*(run(c) for c in coros)))
