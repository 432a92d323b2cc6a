"""Every key a run or the lake writes, built in one place.

::

    {prefix}/{YYYY}/{MM}/{DD}/{name}.json[.gz]              data files (RunLayout.data_key)
        name: {stamp}-{run_id}-{I}of{N}-{token}-{seq}     stamp: the run's UTC start
    {state}/{run_id}/run.json                               the run: its date, its start
    {state}/{run_id}/selection.txt.gz                       the run's saved selection
    {state}/{run_id}/shard-I-of-N/lease.json                one writer per run and shard
    {state}/{run_id}/shard-I-of-N/batches/{name}.json       ids of data file {name}
    {state}/{run_id}/shard-I-of-N/outcomes/{name}.jsonl     not_found / failed ids
    {state}/{run_id}/shard-I-of-N/checkpoint.json           what is known to be done
    {state}/{run_id}/shard-I-of-N/report.jsonl              every id not in a data file
    {state}/_inputs/{digest}.json                           input -> the run it started
    {state}/_lake/formats/{prefix, quoted}.json             the format of the data under prefix
    {state}/_lake/index/records/{name}.json                 a data file's index record
    {state}/_lake/index/segments/{time}-{token}.jsonl.gz    records compacted
    {state}/_lake/index/complete.json                       every data file has its record
    {state}/_lake/refresh/bookmark.json                     the last day the lake has
    {state}/_lake/refresh/last.json                         the last refresh's summary
    {state}/_lake/refresh/lease.json                        one refresh of a lake at a time

``state`` is the *state root*: ``--state-prefix`` when given, else ``_state`` beside the
data prefix (``Raw/TMDB/_state`` for ``Raw/TMDB/JSON``). Runs started before the state
moved out of the data prefix keep theirs in the legacy place, ``{prefix}/_state``: such a
run is found there (:func:`tmdb_ingest.run.state.find_run`) and its :class:`LakeLayout`
then points there, so its lease, checkpoint and saved selection stay in one place.

A data file's name begins with its run's UTC start time (``20261201T175650Z``, kept in
``run.json`` so that every invocation of the run uses the same one): keys sort by the time
their run started, so the latest version of a movie is in the key that sorts last. Runs
created before the stamp have none and keep naming their files ``{run_id}-...``.

Nothing here reads or writes: these are names. Run ids start with a letter or a digit,
so the folders that start with ``_`` never meet a run's folder.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tmdb_ingest.land.formats import DATA_EXTENSIONS, JSON_ARRAY, FileFormat

if TYPE_CHECKING:
    from tmdb_ingest.config.settings import Shard

__all__ = [
    "BatchNamer",
    "LakeLayout",
    "RunLayout",
    "default_state_root",
    "legacy_state_root",
    "run_stamp",
    "stamp_of",
]

STATE_FOLDER = "_state"
SELECTION_NAME = "selection.txt.gz"


def default_state_root(prefix: str) -> str:
    """The state root for data under ``prefix`` when no state prefix is given."""
    parent = prefix.strip("/").rpartition("/")[0]
    return f"{parent}/{STATE_FOLDER}" if parent else STATE_FOLDER


def legacy_state_root(prefix: str) -> str:
    """Where runs kept their state before it moved out of the data prefix."""
    return f"{prefix.strip('/')}/{STATE_FOLDER}"


@dataclass(frozen=True, slots=True)
class LakeLayout:
    """The keys of one lake: data files under ``prefix``, state under ``state_root``."""

    prefix: str
    state_root: str

    @classmethod
    def of(cls, prefix: str, state_prefix: str | None = None) -> LakeLayout:
        """The lake of data ``prefix``, its state under ``state_prefix`` (default: beside it)."""
        prefix = prefix.strip("/")
        return cls(prefix, state_prefix.strip("/") if state_prefix else default_state_root(prefix))

    @property
    def legacy(self) -> LakeLayout:
        """The same lake with its state in the legacy place, ``{prefix}/_state``."""
        return replace(self, state_root=legacy_state_root(self.prefix))

    @property
    def is_legacy(self) -> bool:
        """Whether the state root is the legacy place."""
        return self.state_root == legacy_state_root(self.prefix)

    def places(self) -> tuple[LakeLayout, ...]:
        """Where runs are looked for: this state root, then the legacy place."""
        return (self,) if self.is_legacy else (self, self.legacy)

    # -- one run ------------------------------------------------------------------------

    def run_root(self, run_id: str) -> str:
        """The folder of ``run_id``'s state (ends without a slash)."""
        return f"{self.state_root}/{run_id}"

    def meta_key(self, run_id: str) -> str:
        """The run's ``run.json``: its date and when it started."""
        return f"{self.run_root(run_id)}/run.json"

    def selection_key(self, run_id: str) -> str:
        """The run's saved selection (see :mod:`tmdb_ingest.selection.saved`)."""
        return f"{self.run_root(run_id)}/{SELECTION_NAME}"

    def shard_root(self, run_id: str, shard: Shard) -> str:
        """The folder of one shard of a run."""
        return f"{self.run_root(run_id)}/{shard.slug}"

    def lease_key(self, run_id: str, shard: Shard) -> str:
        """The lease of one run and shard (see :mod:`tmdb_ingest.run.lease`)."""
        return f"{self.shard_root(run_id, shard)}/lease.json"

    # -- the lake -------------------------------------------------------------------------

    def input_key(self, digest: str) -> str:
        """The index entry naming the run that an input (hashed to ``digest``) started."""
        return f"{self.state_root}/_inputs/{digest}.json"

    @property
    def lake_root(self) -> str:
        """The folder of the lake-wide state: its index and its refresh."""
        return f"{self.state_root}/_lake"

    @property
    def format_key(self) -> str:
        """The format of the data under ``prefix`` (:mod:`tmdb_ingest.land.lake_format`).

        Named after the prefix, quoted (slashes too): two prefixes can share a state root,
        and a glob or a filter on ``.../Raw/TMDB/JSON/`` must not match it.
        """
        return f"{self.lake_root}/formats/{quote(self.prefix, safe='')}.json"

    @property
    def index_prefix(self) -> str:
        """Where the lake index's files go (imdb id, tmdb id, data key, fetch date)."""
        return f"{self.lake_root}/index/"

    @property
    def records_prefix(self) -> str:
        """The index's records: one per data file, written before it (lake/index.py)."""
        return f"{self.index_prefix}records/"

    def record_key(self, name: str) -> str:
        """The index record of data file ``name``."""
        return f"{self.records_prefix}{name}.json"

    @property
    def segments_prefix(self) -> str:
        """The index's segments: records compacted together."""
        return f"{self.index_prefix}segments/"

    @property
    def complete_key(self) -> str:
        """Written once every data file of the lake has its index record (a rebuild)."""
        return f"{self.index_prefix}complete.json"

    @property
    def bookmark_key(self) -> str:
        """The refresh bookmark: the last day whose changes the lake has."""
        return f"{self.lake_root}/refresh/bookmark.json"

    @property
    def last_refresh_key(self) -> str:
        """The summary of the lake's last refresh, done or not (for ``status``)."""
        return f"{self.lake_root}/refresh/last.json"

    @property
    def refresh_lease_key(self) -> str:
        """The lease that lets one refresh of the lake run at a time."""
        return f"{self.lake_root}/refresh/lease.json"


@dataclass(frozen=True, slots=True)
class RunLayout:
    """Every key one shard of one run reads or writes, once its date is known."""

    lake: LakeLayout
    run_id: str
    shard: Shard
    date: str  # "YYYY/MM/DD", the run's start date (UTC), from run.json
    format: FileFormat = JSON_ARRAY
    stamp: str = ""  # the run's UTC start time, 20261201T175650Z ("": a run from before it)

    @property
    def prefix(self) -> str:
        """The data prefix."""
        return self.lake.prefix

    @property
    def run_root(self) -> str:
        """This run's state folder."""
        return self.lake.run_root(self.run_id)

    @property
    def shard_root(self) -> str:
        return self.lake.shard_root(self.run_id, self.shard)

    @property
    def meta_key(self) -> str:
        return self.lake.meta_key(self.run_id)

    @property
    def lease_key(self) -> str:
        return self.lake.lease_key(self.run_id, self.shard)

    @property
    def selection_key(self) -> str:
        return self.lake.selection_key(self.run_id)

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
        return f"{self.prefix}/{self.date}/{self.name_base}-"

    @property
    def name_base(self) -> str:
        """What every file name of this run and shard starts with."""
        base = f"{self.run_id}-{self.shard.index}of{self.shard.count}"
        return f"{self.stamp}-{base}" if self.stamp else base

    def manifest_key(self, name: str) -> str:
        return f"{self.manifests_prefix}{name}.json"

    def outcomes_key(self, name: str) -> str:
        return f"{self.outcomes_prefix}{name}.jsonl"

    def data_key(self, name: str) -> str:
        return f"{self.prefix}/{self.date}/{name}{self.format.extension}"

    def new_namer(self) -> BatchNamer:
        """Names for the files of one invocation (each invocation its own)."""
        return BatchNamer(self.name_base)

    def data_name(self, key: str) -> str:
        """The name of a data file from its key, whatever its format's extension."""
        base = key.rsplit("/", 1)[-1]
        for extension in DATA_EXTENSIONS:
            if base.endswith(extension):
                return base[: -len(extension)]
        return base


def run_stamp(moment: dt.datetime) -> str:
    """A run's start time as its data file names begin: ``20261201T175650Z`` (UTC)."""
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def stamp_of(meta: Mapping[str, Any]) -> str:
    """The stamp a run's ``run.json`` holds ("" for a run from before stamps)."""
    stamp = meta.get("stamp")
    return stamp if isinstance(stamp, str) else ""


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
