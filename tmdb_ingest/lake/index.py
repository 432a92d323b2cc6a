"""The lake index: every movie in a data file, read without reading the data files.

::

    {state}/_lake/index/records/{name}.json        one per data file, written before it
    {state}/_lake/index/segments/{stamp}-{token}.jsonl.gz    records compacted together

A *record* names one data file: its key, the date its movies were fetched, what decided
their data (``language``, ``append``) and its movies as ``[imdb_id, tmdb_id]`` pairs. It
is written with ``If-None-Match`` after the run's manifest and before the data file, and
counts only if that data file exists, as the manifest does. So the index holds a movie if
and only if its data file landed, whatever happened in between (a retried write, SIGKILL,
a lease taken over): a record whose data never landed is never counted, and a data file
never lands without its record. Names are unique per invocation, so no record is ever
written twice, across runs, shards and refreshes.

A *segment* is the records known to have landed, one per line (the same objects), gzipped;
each one is a superset of the segment it was built from, so a reader takes the latest
(names sort by time) and the records it does not cover, checking that their data files
exist by listing. A compaction writes a new segment, then deletes the records it covers;
a reader checks that no newer segment appeared while it listed the records, else reads
again, so a read racing a compaction loses nothing. Reading never reads a data file.

Lakes written before the index have data files without records: :func:`rebuild` reads
those data files once and writes their records (resumable: a file with a record is done).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tmdb_ingest.errors import PreconditionFailed, SinkError
from tmdb_ingest.land.formats import DATA_EXTENSIONS
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.run.layout import LakeLayout

__all__ = [
    "IndexFile",
    "IndexRecorder",
    "LakeIndex",
    "RebuildProgress",
    "rebuild",
    "tmdb_ids_of",
]

log = logging.getLogger("tmdb_ingest")

_READ_CONCURRENCY = 16
_READ_ATTEMPTS = 5
_KEY_LISTINGS = 64  # up to this many data files are checked one listing each
# The top-level keys of TMDB's movie-details object: any other key of a body is a part
# that append_to_response added (used when a lake from before the index is rebuilt).
_DETAIL_KEYS = frozenset(
    (
        "adult",
        "backdrop_path",
        "belongs_to_collection",
        "budget",
        "genres",
        "homepage",
        "id",
        "imdb_id",
        "origin_country",
        "original_language",
        "original_title",
        "overview",
        "popularity",
        "poster_path",
        "production_companies",
        "production_countries",
        "release_date",
        "revenue",
        "runtime",
        "spoken_languages",
        "status",
        "tagline",
        "title",
        "video",
        "vote_average",
        "vote_count",
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class IndexFile:
    """One data file of the lake as the index knows it."""

    name: str
    key: str
    fetched: str  # YYYY-MM-DD (UTC), the day its movies were fetched
    language: str | None
    append: tuple[str, ...]
    movies: tuple[tuple[str, int | None], ...]  # (imdb_id, tmdb_id)
    language_known: bool = True  # False: rebuilt from the data, which do not say it

    def to_json(self) -> bytes:
        record: dict[str, object] = {
            "name": self.name,
            "key": self.key,
            "fetched": self.fetched,
            "language": self.language,
            "append": list(self.append),
            "movies": [list(m) for m in self.movies],
        }
        if not self.language_known:
            record["language_known"] = False
        return orjson.dumps(record)

    @classmethod
    def from_json(cls, raw: bytes | str) -> IndexFile:
        d = orjson.loads(raw)
        return cls(
            name=str(d["name"]),
            key=str(d["key"]),
            fetched=str(d["fetched"]),
            language=d.get("language"),
            append=tuple(d.get("append") or ()),
            movies=tuple(map(tuple, d["movies"])),  # [imdb_id, tmdb_id] pairs
            language_known=d.get("language_known", True) is not False,
        )


def tmdb_ids_of(bodies: Iterable[bytes]) -> list[int | None]:
    """The TMDB id (the body's ``id``) of each raw movie-details body."""
    ids: list[int | None] = []
    for body in bodies:
        value = orjson.loads(body).get("id")
        ids.append(value if isinstance(value, int) else None)
    return ids


@dataclass(frozen=True, slots=True)
class IndexRecorder:
    """Writes the record of each data file a run lands (see the module docstring)."""

    keys: LakeLayout
    language: str | None = None
    append: tuple[str, ...] = ()
    today: Callable[[], dt.date] = field(default=lambda: dt.datetime.now(dt.UTC).date())

    def record(
        self, name: str, key: str, imdb_ids: Sequence[str], tmdb_ids: Sequence[int | None]
    ) -> tuple[str, bytes]:
        """The record's key and bytes for data file ``name`` at ``key``."""
        entry = IndexFile(
            name=name,
            key=key,
            fetched=self.today().isoformat(),
            language=self.language,
            append=self.append,
            movies=tuple(zip(imdb_ids, tmdb_ids, strict=True)),
        )
        return self.keys.record_key(name), entry.to_json()

    async def write(
        self,
        sink: Sink,
        name: str,
        key: str,
        imdb_ids: Sequence[str],
        tmdb_ids: Sequence[int | None],
    ) -> None:
        """Write the record, before the data file it names."""
        record_key, body = self.record(name, key, imdb_ids, tmdb_ids)
        await sink.put(record_key, body, if_none_match=True)


class LakeIndex:
    """Reads (and compacts) the index of the lake whose keys are ``keys``."""

    def __init__(self, sink: Sink, keys: LakeLayout) -> None:
        self.sink = sink
        self.keys = keys

    async def _segment_names(self) -> list[str]:
        return sorted(
            [k async for k in self.sink.iter_keys(self.keys.segments_prefix)], reverse=True
        )

    async def _latest_segment(
        self, names: list[str] | None = None
    ) -> tuple[str | None, list[IndexFile]]:
        if names is None:
            names = await self._segment_names()
        for key in names:
            raw = await self.sink.get(key)
            if raw is None:
                continue
            try:
                lines = gzip.decompress(raw).splitlines()
                return key, [IndexFile.from_json(line) for line in lines if line.strip()]
            except (OSError, EOFError, orjson.JSONDecodeError, KeyError, TypeError, IndexError):
                log.warning("index segment %s is damaged; using an older one", key)
        return None, []

    async def record_names(self) -> list[str]:
        """The names of every record written (landed or not)."""
        prefix = self.keys.records_prefix
        return [
            k[len(prefix) : -len(".json")]
            async for k in self.sink.iter_keys(prefix)
            if k.endswith(".json")
        ]

    async def files(self, *, compact: bool = False) -> list[IndexFile]:
        """Every data file of the lake, once each, in key order (the oldest first).

        ``compact``: also write a new segment when records landed since the latest one
        (the next reader then reads one object instead of those records).
        """
        _, files, new = await self._read()
        if compact and new:
            await self.write_segment(files)
        return files

    async def _read(self) -> tuple[str | None, list[IndexFile], int]:
        for _ in range(_READ_ATTEMPTS):
            names = await self._segment_names()
            segment, files = await self._latest_segment(names)
            records = await self.record_names()
            # A compaction deletes the records its segment covers, after writing it: the
            # records listed belong with the segment read only if no newer one appeared
            # meanwhile (S3 lists are strongly consistent).
            if (await self._segment_names())[:1] == names[:1]:
                break
        else:
            raise SinkError("the lake index kept changing while it was read; try again")
        covered = {f.name for f in files}
        uncovered = [n for n in records if n not in covered]
        fresh = [f for f in await self._records(uncovered) if f is not None]
        landed = await self._existing({f.key for f in fresh})
        new = [f for f in fresh if f.key in landed]
        everything = sorted(files + new, key=lambda f: f.key)
        return segment, everything, len(new)

    async def _records(self, names: Sequence[str]) -> list[IndexFile | None]:
        semaphore = asyncio.Semaphore(_READ_CONCURRENCY)

        async def one(name: str) -> IndexFile | None:
            async with semaphore:
                raw = await self.sink.get(self.keys.record_key(name))
            if raw is None:
                return None
            try:
                return IndexFile.from_json(raw)
            except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
                raise SinkError(
                    f"index record {self.sink.uri(self.keys.record_key(name))} is damaged"
                ) from None

        return list(await asyncio.gather(*(one(n) for n in names)))

    async def _existing(self, keys: set[str]) -> set[str]:
        """Which of ``keys`` exist: listings, never a read (one per key when there are
        few, else one per day folder)."""
        prefixes = (
            sorted(keys)
            if len(keys) <= _KEY_LISTINGS
            else sorted({k.rsplit("/", 1)[0] + "/" for k in keys})
        )
        semaphore = asyncio.Semaphore(_READ_CONCURRENCY)

        async def listed(prefix: str) -> set[str]:
            async with semaphore:
                return {k async for k in self.sink.iter_keys(prefix) if k in keys}

        found: set[str] = set()
        for part in await asyncio.gather(*(listed(p) for p in prefixes)):
            found |= part
        return found

    async def compact(self) -> int:
        """Write a new segment if records landed since the latest, then delete the records
        it covers (so that readers list only what landed since); return how many landed.

        Only one compactor at a time (the refresh, under the lake's refresh lease).
        """
        _, files, new = await self._read()
        if new:
            await self.write_segment(files)
        covered = {f.name for f in files}
        stale = [n for n in await self.record_names() if n in covered]
        semaphore = asyncio.Semaphore(_READ_CONCURRENCY)

        async def delete(name: str) -> None:
            async with semaphore:
                await self.sink.delete(self.keys.record_key(name))

        await asyncio.gather(*(delete(n) for n in stale))
        return new

    async def is_complete(self) -> bool:
        """True once every data file under the prefix is known to have a record (written
        by :func:`rebuild`): later data files all come with theirs."""
        return await self.sink.get(self.keys.complete_key) is not None

    async def write_segment(self, files: Sequence[IndexFile]) -> str:
        """Write ``files`` as a new segment (for compaction, or a lake built elsewhere)."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        key = f"{self.keys.segments_prefix}{stamp}-{secrets.token_hex(4)}.jsonl.gz"
        body = gzip.compress(b"".join(f.to_json() + b"\n" for f in files), compresslevel=6)
        await self.sink.put(key, body, content_type="application/gzip", if_none_match=True)
        log.info("index: %d data files compacted into %s", len(files), key)
        return key


@dataclass
class RebuildProgress:
    """Where a rebuild stands: data files seen, indexed before, indexed now."""

    data_files: int = 0
    indexed_before: int = 0
    indexed_now: int = 0
    movies: int = 0


async def rebuild(
    sink: Sink,
    keys: LakeLayout,
    prefix: str,
    *,
    progress: Callable[[RebuildProgress], None] | None = None,
    compact: bool = True,
    once: bool = False,
) -> RebuildProgress:
    """Index the data files under ``prefix`` that have no record (a lake from before the
    index), then compact (unless ``compact`` is false). Resumable: each file indexed is
    a record, kept if stopped. Only those files are read; with none, only listings.
    When every file is indexed it records so (``{index}/complete.json``); ``once``: do
    nothing when that is recorded (what a refresh does: the listing of every data file
    is needed only once per lake).
    """
    index = LakeIndex(sink, keys)
    if once and await index.is_complete():
        return RebuildProgress()
    have = set(await index.record_names())
    _, compacted = await index._latest_segment()
    have |= {f.name for f in compacted}
    data_keys = [
        k
        async for k in sink.iter_keys(f"{prefix.strip('/')}/")
        if _data_name(k) is not None and "/_" not in k
    ]
    state = RebuildProgress(data_files=len(data_keys))
    todo = [k for k in data_keys if _data_name(k) not in have]
    state.indexed_before = len(data_keys) - len(todo)
    if todo:
        log.info(
            "index rebuild: %d of %d data files have no index record; reading them once",
            len(todo),
            len(data_keys),
        )
    semaphore = asyncio.Semaphore(_READ_CONCURRENCY)

    async def one(key: str) -> None:
        async with semaphore:
            raw = await sink.get(key)
            if raw is None:
                return
            entry = _entry_from_data(key, raw, prefix)
            # PreconditionFailed: indexed meanwhile (another rebuild): its record stands
            with contextlib.suppress(PreconditionFailed):
                await sink.put(keys.record_key(entry.name), entry.to_json(), if_none_match=True)
        state.indexed_now += 1
        state.movies += len(entry.movies)
        if progress is not None:
            progress(state)
        if state.indexed_now % 100 == 0 or state.indexed_now == len(todo):
            log.info("index rebuild: %d of %d files indexed", state.indexed_now, len(todo))

    await asyncio.gather(*(one(k) for k in todo))
    if compact:
        await index.compact()
    await sink.put(
        keys.complete_key,
        orjson.dumps({"at": dt.datetime.now(dt.UTC).isoformat(), "data_files": len(data_keys)}),
    )
    return state


def _data_name(key: str) -> str | None:
    base = key.rsplit("/", 1)[-1]
    for extension in DATA_EXTENSIONS:
        if base.endswith(extension):
            return base[: -len(extension)]
    return None


def _entry_from_data(key: str, raw: bytes, prefix: str) -> IndexFile:
    """The record of a data file from its bytes (array or lines, gzipped or not)."""
    if key.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.strip()
    bodies: list[dict[str, Any]]
    if text.startswith(b"["):
        bodies = list(orjson.loads(text))
    else:
        bodies = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    extra = sorted({k for b in bodies for k in b} - _DETAIL_KEYS)
    # The day folder under the prefix: {prefix}/YYYY/MM/DD/name
    parts = key[len(prefix.strip("/")) + 1 :].split("/")
    try:
        fetched = dt.date(int(parts[0]), int(parts[1]), int(parts[2])).isoformat()
    except (ValueError, IndexError):
        fetched = dt.datetime.now(dt.UTC).date().isoformat()
    name = _data_name(key)
    assert name is not None
    return IndexFile(
        name=name,
        key=key,
        fetched=fetched,
        language=None,  # not in the body: a refresh uses its --language for these
        language_known=False,
        append=tuple(extra),
        movies=tuple(
            (str(b.get("imdb_id")), b["id"] if isinstance(b.get("id"), int) else None)
            for b in bodies
        ),
    )
