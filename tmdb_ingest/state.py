"""Run identity, the output layout, and the run state that makes resuming exactly once.

Layout (``prefix`` defaults to ``Raw/TMDB/JSON``)::

    {prefix}/{YYYY}/{MM}/{DD}/{run_id}-{I}of{N}-{token}-{seq}.json   data: a JSON array
    {prefix}/_state/{run_id}/run.json                                the run: its date
    {prefix}/_state/{run_id}/shard-I-of-N/batches/{name}.json        ids of data file {name}
    {prefix}/_state/{run_id}/shard-I-of-N/outcomes/{name}.jsonl      not_found / failed ids
    {prefix}/_state/{run_id}/shard-I-of-N/checkpoint.json            what is known to be done
    {prefix}/_state/{run_id}/shard-I-of-N/report.jsonl               every id not in a data file

Exactly once, also across SIGKILL: before a data file is written, its manifest (the ids
it will hold) is written under ``batches/``. On resume, a manifest counts only if its
data file exists, so "landed" is read from what actually landed: a crash between the
manifest and the data file leaves a manifest without data, whose ids are fetched again
under a new name; a crash after the data file leaves both, and those ids are skipped.
Each invocation names its files with its own token, so no two invocations write the
same key. Report entries are written in whole chunks; an id is in a chunk or not.
The checkpoint only saves work (fewer reads on resume): losing it loses nothing.

Two invocations of the same run *and* shard must not run at the same time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tmdb_ingest.errors import SinkError
from tmdb_ingest.settings import Settings, Shard
from tmdb_ingest.sinks import Sink

__all__ = ["ReportEntry", "RunLayout", "RunState", "derive_run_id", "shard_of"]


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
    """A run id from the selection and the date: the same command on the same day resumes."""
    h = hashlib.sha256()
    h.update(orjson.dumps([settings.genres, settings.votes_above, settings.batch_size]))
    for imdb_id in ids:
        h.update(imdb_id.encode())
        h.update(b"\n")
    return f"run-{day:%Y%m%d}-{h.hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One id that is not in a data file, and why."""

    imdb_id: str
    outcome: str  # "not_found" or "failed"
    reason: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"imdb_id": self.imdb_id, "outcome": self.outcome, "reason": self.reason}
        )


@dataclass(frozen=True, slots=True)
class RunLayout:
    """Every key a run reads or writes."""

    prefix: str
    run_id: str
    shard: Shard
    date: str  # "YYYY/MM/DD"

    @property
    def state_root(self) -> str:
        return f"{self.prefix}/_state/{self.run_id}"

    @property
    def shard_root(self) -> str:
        return f"{self.state_root}/{self.shard.slug}"

    @property
    def meta_key(self) -> str:
        return f"{self.state_root}/run.json"

    @property
    def checkpoint_key(self) -> str:
        return f"{self.shard_root}/checkpoint.json"

    @property
    def report_key(self) -> str:
        return f"{self.shard_root}/report.jsonl"

    @property
    def manifests_prefix(self) -> str:
        return f"{self.shard_root}/batches/"

    @property
    def outcomes_prefix(self) -> str:
        return f"{self.shard_root}/outcomes/"

    @property
    def data_prefix(self) -> str:
        """Where this run's and shard's data files are: a folder and a name prefix."""
        return f"{self.prefix}/{self.date}/{self.run_id}-{self.shard.index}of{self.shard.count}-"

    def manifest_key(self, name: str) -> str:
        return f"{self.manifests_prefix}{name}.json"

    def outcomes_key(self, name: str) -> str:
        return f"{self.outcomes_prefix}{name}.jsonl"

    def data_key(self, name: str) -> str:
        return f"{self.prefix}/{self.date}/{name}.json"

    def new_namer(self) -> BatchNamer:
        return BatchNamer(f"{self.run_id}-{self.shard.index}of{self.shard.count}")


class BatchNamer:
    """Names the files of one invocation: ``{base}-{token}-{seq:05d}``, never reused."""

    def __init__(self, base: str) -> None:
        # seconds since the epoch first, so names sort by invocation
        self.token = f"{int(time.time()):08x}{secrets.token_hex(3)}"
        self._base = base
        self._seq = 0

    def next(self) -> str:
        self._seq += 1
        return f"{self._base}-{self.token}-{self._seq:05d}"


def _name_of(key: str, prefix: str, suffix: str) -> str:
    return key[len(prefix) : -len(suffix)] if key.endswith(suffix) else key[len(prefix) :]


@dataclass
class RunState:
    """What a run and shard has done so far: landed batches and reported ids."""

    layout: RunLayout
    sink: Sink
    landed: dict[str, list[str]] = field(default_factory=dict)
    reported: dict[str, list[ReportEntry]] = field(default_factory=dict)
    dead: set[str] = field(default_factory=set)

    @classmethod
    async def open(
        cls, sink: Sink, *, prefix: str, run_id: str, shard: Shard, today: dt.date
    ) -> RunState:
        """Load the state of ``run_id``/``shard`` from the sink, creating the run if new."""
        meta_key = f"{prefix}/_state/{run_id}/run.json"
        raw = await sink.get(meta_key)
        if raw is None:
            date = f"{today:%Y/%m/%d}"
            meta = {
                "run_id": run_id,
                "date": date,
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
            }
            await sink.put(meta_key, orjson.dumps(meta))
        else:
            try:
                date = str(orjson.loads(raw)["date"])
                dt.datetime.strptime(date, "%Y/%m/%d")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise SinkError(f"run state {sink.uri(meta_key)} is damaged") from None
        state = cls(RunLayout(prefix, run_id, shard, date), sink)
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
                    k: [ReportEntry(*e) for e in v] for k, v in saved["reported"].items()
                }
                self.dead = set(saved["dead"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                # The checkpoint only saves reads: rebuild from the manifests instead.
                self.landed, self.reported, self.dead = {}, {}, set()

        manifests = [
            _name_of(k, layout.manifests_prefix, ".json")
            async for k in sink.iter_keys(layout.manifests_prefix)
        ]
        unknown = [n for n in manifests if n not in self.landed and n not in self.dead]
        if unknown:
            folder = layout.data_prefix.rsplit("/", 1)[0] + "/"
            existing = {
                _name_of(k, folder, ".json") async for k in sink.iter_keys(layout.data_prefix)
            }
            bodies = await _gather_limited([sink.get(layout.manifest_key(n)) for n in unknown])
            for name, body in zip(unknown, bodies, strict=True):
                if name in existing and body is not None:
                    self.landed[name] = list(orjson.loads(body))
                else:
                    self.dead.add(name)  # manifest written, data never landed

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
                    entries.append(ReportEntry(e["imdb_id"], e["outcome"], e["reason"]))
            self.reported[name] = entries

    def landed_ids(self) -> set[str]:
        return {i for ids in self.landed.values() for i in ids}

    def reported_ids(self) -> set[str]:
        return {e.imdb_id for entries in self.reported.values() for e in entries}

    def resolved_ids(self) -> set[str]:
        """Every id already in a data file or in the report."""
        return self.landed_ids() | self.reported_ids()

    async def write_batch(self, name: str, ids: list[str], data: bytes) -> str:
        """Land one data file: manifest first, then the data. Returns the data key."""
        # If-None-Match: no key is ever overwritten, so a second writer cannot replace one.
        await self.sink.put(self.layout.manifest_key(name), orjson.dumps(ids), if_none_match=True)
        key = self.layout.data_key(name)
        await self.sink.put(key, data, if_none_match=True)
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
        checkpoint = {
            "run_id": self.layout.run_id,
            "shard": str(self.layout.shard),
            "landed": self.landed,
            "reported": {
                k: [[e.imdb_id, e.outcome, e.reason] for e in v] for k, v in self.reported.items()
            },
            "dead": sorted(self.dead),
        }
        await self.sink.put(self.layout.checkpoint_key, orjson.dumps(checkpoint))
        entries = sorted((e for v in self.reported.values() for e in v), key=lambda e: e.imdb_id)
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
