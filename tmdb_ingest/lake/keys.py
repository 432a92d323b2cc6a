"""The keys of the lake-wide state: the index, the refresh bookmark, the refresh lease.

::

    {state}/_lake/index/records/{name}.json          one per data file (see lake.index)
    {state}/_lake/index/segments/{stamp}.jsonl.gz    records compacted
    {state}/_lake/index/complete.json                every data file has its record
    {state}/_lake/refresh/bookmark.json              the last day whose changes the lake has
    {state}/_lake/refresh/last.json                  the last refresh's summary, done or not
    {state}/_lake/refresh/lease.json                 one refresh of the lake at a time

``state`` is the lake's state root (``Settings.state_root``): a folder starting with
``_`` beside the data prefix, so a glob over the data prefix sees only movies. Run ids
never start with ``_``, so ``_lake`` never meets a run's folder.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LakeKeys"]


@dataclass(frozen=True, slots=True)
class LakeKeys:
    """Every key of the lake-wide state under ``state_root``."""

    state_root: str

    @property
    def lake_root(self) -> str:
        return f"{self.state_root.strip('/')}/_lake"

    @property
    def index_prefix(self) -> str:
        return f"{self.lake_root}/index/"

    @property
    def records_prefix(self) -> str:
        return f"{self.index_prefix}records/"

    @property
    def segments_prefix(self) -> str:
        return f"{self.index_prefix}segments/"

    @property
    def complete_key(self) -> str:
        """Written once every data file of the lake has its record (after a rebuild)."""
        return f"{self.index_prefix}complete.json"

    def record_key(self, name: str) -> str:
        return f"{self.records_prefix}{name}.json"

    @property
    def bookmark_key(self) -> str:
        return f"{self.lake_root}/refresh/bookmark.json"

    @property
    def last_refresh_key(self) -> str:
        return f"{self.lake_root}/refresh/last.json"

    @property
    def refresh_lease_key(self) -> str:
        return f"{self.lake_root}/refresh/lease.json"
