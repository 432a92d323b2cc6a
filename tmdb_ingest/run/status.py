"""Where a run stands, per shard, read from its state alone (no CSV, no TMDB).

For each shard: how many ids it has (``selected``, recorded by the invocation that last
saved it), how many landed in data files, were not found or failed, how many are left,
how many data files it wrote, when its first invocation started and its latest saved,
and whether it is done. "Landed" is read the way a resuming run reads it (a manifest
counts only if its data file exists), so a shard killed before it saved still shows
what it landed; only ``selected`` and the times need a saved checkpoint.

``tmdb-ingest status`` prints a table for people, or one JSON object (``--json``) for
scripts. It reads S3 (``--bucket``) or a local folder (``--out-dir``), the run given by
``--run-id`` or else the latest run under the state root.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

from tmdb_ingest.config.settings import DEFAULT_PREFIX, Settings, Shard
from tmdb_ingest.errors import ConfigError, SinkError
from tmdb_ingest.fetch.outcomes import Outcome
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.run.layout import LakeLayout, RunLayout, stamp_of
from tmdb_ingest.run.state import RunState, find_run

__all__ = ["RunStatus", "ShardStatus", "command", "run_status"]

_SHARD_RE = re.compile(r"^shard-(\d+)-of-(\d+)$")


@dataclass(frozen=True, slots=True)
class ShardStatus:
    """One shard of a run. ``selected``, ``left`` and the times are None when unknown."""

    shard: str
    selected: int | None
    landed: int
    not_found: int
    failed: int
    left: int | None
    files: int
    started: str | None
    last_invocation: str | None
    done: bool


@dataclass(frozen=True, slots=True)
class RunStatus:
    """A run: when it started, where its state is, and each of its shards."""

    run_id: str
    started: str | None
    state: str  # a URI of the run's state folder
    shards: list[ShardStatus]
    refresh: dict[str, Any] | None = None  # the lake's bookmark and last refresh

    @property
    def done(self) -> bool:
        """Every shard of the run has every one of its ids landed or reported."""
        return bool(self.shards) and all(s.done for s in self.shards)

    def totals(self) -> dict[str, int | None]:
        """The shards' counts added up (None when a shard's count is unknown)."""
        out: dict[str, int | None] = {}
        for name in ("selected", "landed", "not_found", "failed", "left", "files"):
            values = [getattr(s, name) for s in self.shards]
            out[name] = None if None in values else sum(values)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started": self.started,
            "state": self.state,
            "done": self.done,
            "totals": self.totals(),
            "shards": [asdict(s) for s in self.shards],
            **({"refresh": self.refresh} if self.refresh is not None else {}),
        }

    def to_json(self) -> str:
        return orjson.dumps(self.as_dict()).decode()

    def to_text(self) -> str:
        """A table for people: one row per shard, then the totals."""
        head = (
            "shard",
            "selected",
            "landed",
            "not_found",
            "failed",
            "left",
            "files",
            "started",
            "last invocation",
            "done",
        )
        rows: list[tuple[str, ...]] = [head]
        for s in self.shards:
            rows.append(
                (
                    s.shard,
                    _n(s.selected),
                    _n(s.landed),
                    _n(s.not_found),
                    _n(s.failed),
                    _n(s.left),
                    _n(s.files),
                    _time(s.started),
                    _time(s.last_invocation),
                    "yes" if s.done else "no",
                )
            )
        t = self.totals()
        rows.append(
            (
                "all",
                *(_n(t[k]) for k in ("selected", "landed", "not_found", "failed", "left", "files")),
                "",
                "",
                "yes" if self.done else "no",
            )
        )
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        left_aligned = {0, 7, 8, 9}
        lines = [
            f"run {self.run_id}, started {_time(self.started)}",
            f"state {self.state}",
        ]
        for row in rows:
            cells = [
                cell.ljust(w) if i in left_aligned else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        if self.refresh is not None:
            lines += _refresh_lines(self.refresh)
        return "\n".join(lines)


def _refresh_lines(refresh: dict[str, Any]) -> list[str]:
    bookmark, last = refresh.get("bookmark"), refresh.get("last")
    lines = [
        f"refresh bookmark: changes up to {bookmark['until']} (moved {_time(bookmark.get('at'))})"
        if bookmark
        else "refresh bookmark: none (no refresh done yet)"
    ]
    if last:
        lines.append(
            f"last refresh {_time(last.get('at'))}: {last.get('since')}..{last.get('until')}, "
            f"{last.get('pages', 0)} pages, {last.get('changed', 0)} changed, "
            f"{last.get('in_lake', 0)} in the lake, {last.get('fetched', 0)} fetched, "
            f"done: {'yes' if last.get('done') else 'no'}"
        )
    return lines


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def _time(value: str | None) -> str:
    """ISO 8601 UTC -> ``2026-11-30 21:00:03Z``; ``?`` when unknown."""
    if not value:
        return "?"
    return value[:19].replace("T", " ") + ("Z" if value.endswith(("+00:00", "Z")) else "")


def _shard_status(state: RunState) -> ShardStatus:
    landed = state.landed_ids()
    not_found: set[str] = set()
    failed: set[str] = set()
    for entries in state.reported.values():
        for e in entries:
            (not_found if e.outcome is Outcome.NOT_FOUND else failed).add(e.imdb_id)
    not_found -= landed
    failed -= landed | not_found
    resolved = len(landed) + len(not_found) + len(failed)
    left = None if state.selected is None else max(0, state.selected - resolved)
    return ShardStatus(
        shard=str(state.layout.shard),
        selected=state.selected,
        landed=len(landed),
        not_found=len(not_found),
        failed=len(failed),
        left=left,
        files=len(state.landed),
        started=state.started,
        last_invocation=state.last_invocation,
        done=left == 0,
    )


async def latest_run(sink: Sink, lake: LakeLayout) -> str | None:
    """The run id under ``lake``'s state root (or the legacy place) that started last."""
    found: list[tuple[str, str]] = []
    for place in lake.places():
        root = place.state_root
        async for key in sink.iter_keys(f"{root}/"):
            parts = key[len(root) + 1 :].split("/")
            if len(parts) != 2 or key != place.meta_key(parts[0]):
                continue
            raw = await sink.get(key)
            try:
                meta = orjson.loads(raw or b"")
                started = str(meta.get("started") or meta.get("created_at") or "")
            except (orjson.JSONDecodeError, AttributeError):
                started = ""
            found.append((started, parts[0]))
    return max(found)[1] if found else None


async def run_status(
    sink: Sink,
    *,
    prefix: str = DEFAULT_PREFIX,
    state_root: str | None = None,
    run_id: str | None = None,
) -> RunStatus:
    """The status of ``run_id`` (default: the latest run), read from the state in ``sink``.

    ``prefix`` is the data prefix (data files prove what landed); ``state_root`` where
    runs keep their state (default: beside ``prefix``; runs in the legacy place are found
    too). Shards the run has never started are listed as such when another shard names
    the count. Raises ConfigError when there is no such run, SinkError when it cannot read.
    """
    lake = LakeLayout.of(prefix, state_root)
    where = sink.uri(f"{lake.state_root}/")
    if run_id is None:
        run_id = await latest_run(sink, lake)
        if run_id is None:
            raise ConfigError("run_id", f"no run found under {where}")
    found = await find_run(sink, lake, run_id)
    if found.meta is None:
        raise ConfigError("run_id", f"no run {run_id!r} under {where}")
    meta = found.meta
    run_root = f"{found.lake.run_root(run_id)}/"
    shards: set[Shard] = set()
    async for key in sink.iter_keys(run_root):
        match = _SHARD_RE.match(key[len(run_root) :].split("/", 1)[0])
        if match:
            count = int(match.group(2))
            shards.update(Shard(i, count) for i in range(count))
    # the data prefix the run wrote to, as it recorded it
    data_lake = LakeLayout(str(meta.get("prefix") or lake.prefix), found.lake.state_root)
    states = await asyncio.gather(
        *(
            RunState.read(
                sink, RunLayout(data_lake, run_id, shard, meta["date"], stamp=stamp_of(meta))
            )
            for shard in sorted(shards, key=lambda s: (s.count, s.index))
        )
    )
    return RunStatus(
        run_id=run_id,
        started=meta.get("started") or meta.get("created_at"),
        state=sink.uri(run_root),
        shards=[_shard_status(s) for s in states],
    )


def command(args: argparse.Namespace) -> int:
    """Print the status of a run; 0 when it was read (ConfigError/SinkError propagate)."""
    from tmdb_ingest.cli_parser import flags_given

    settings = Settings.from_env(flags=flags_given(args))
    settings.require_sink()
    status = asyncio.run(_status(settings, settings.run_id))
    print(status.to_json() if args.json else status.to_text(), flush=True)
    return 0


async def _status(settings: Settings, run_id: str | None) -> RunStatus:
    from tmdb_ingest.land.opening import open_sink

    if settings.out_dir is not None and not settings.out_dir.is_dir():
        raise SinkError(f"no folder {settings.out_dir}")  # reading creates nothing
    async with open_sink(settings) as sink:
        status = await run_status(
            sink, prefix=settings.prefix, state_root=settings.state_prefix, run_id=run_id
        )
        from tmdb_ingest.lake.refresh import read_bookmark, read_last_refresh

        keys = LakeLayout.of(settings.prefix, settings.state_prefix)
        bookmark, last = await read_bookmark(sink, keys), await read_last_refresh(sink, keys)
        if bookmark is None and last is None:
            return status
        return replace(status, refresh={"bookmark": bookmark, "last": last})
