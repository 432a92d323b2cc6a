"""Data file names begin with their run's UTC start time, the same on every invocation."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import orjson

from tmdb_ingest.config.settings import Shard
from tmdb_ingest.land.sinks import LocalSink
from tmdb_ingest.run.layout import run_stamp
from tmdb_ingest.run.state import RunState

DAY = dt.date(2026, 11, 30)
PREFIX = "Raw/TMDB/JSON"


async def open_state(root: Path, run_id: str = "r1") -> RunState:
    return await RunState.open(
        LocalSink(root), prefix=PREFIX, run_id=run_id, shard=Shard(1, 2), today=DAY
    )


def test_the_stamp_is_the_utc_time_compact() -> None:
    moment = dt.datetime(2026, 12, 1, 18, 56, 50, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert run_stamp(moment) == "20261201T175650Z"


async def test_a_new_runs_names_begin_with_its_start_time_on_every_invocation(
    tmp_path: Path,
) -> None:
    first = await open_state(tmp_path)
    name = first.layout.new_namer().next()
    assert re.fullmatch(r"\d{8}T\d{6}Z-r1-1of2-[0-9a-f]{14}-00001", name), name
    key = await first.write_batch(name, ["tt0000001"], b"[{}]\n")
    assert key == f"{PREFIX}/2026/11/30/{name}.json"
    # a later invocation (another day, another second) keeps the run's stamp and finds
    # what the first one landed
    resumed = await RunState.open(
        LocalSink(tmp_path),
        prefix=PREFIX,
        run_id="r1",
        shard=Shard(1, 2),
        today=DAY + dt.timedelta(days=1),
    )
    assert resumed.layout.new_namer().next()[:16] == name[:16]
    assert resumed.landed_ids() == {"tt0000001"}


async def test_a_run_from_before_the_stamp_keeps_its_old_names(tmp_path: Path) -> None:
    """run.json without a stamp: names begin with the run id, as the files it landed."""
    meta = {"run_id": "run-old", "date": "2026/11/30", "started": "2026-11-30T10:00:00+00:00"}
    meta_path = tmp_path / "Raw/TMDB/_state/run-old/run.json"
    meta_path.parent.mkdir(parents=True)
    meta_path.write_bytes(orjson.dumps(meta))
    old = await open_state(tmp_path, "run-old")
    name = old.layout.new_namer().next()
    assert name.startswith("run-old-1of2-")
    await old.write_batch(name, ["tt0000001"], b"[{}]\n")
    assert (await open_state(tmp_path, "run-old")).landed_ids() == {"tt0000001"}
