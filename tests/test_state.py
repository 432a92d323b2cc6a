"""Run state on its own: what counts as landed after a crash, on a local folder sink."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from tmdb_ingest.config.settings import Settings, Shard
from tmdb_ingest.errors import SinkError
from tmdb_ingest.fetch.outcomes import Outcome
from tmdb_ingest.land.sinks import LocalSink
from tmdb_ingest.run.state import ReportEntry, RunState, derive_run_id, in_shard, shard_of

DAY = dt.date(2026, 11, 30)


async def open_state(root: Path, run_id: str = "r1", today: dt.date = DAY) -> RunState:
    return await RunState.open(
        LocalSink(root), prefix="Raw/TMDB/JSON", run_id=run_id, shard=Shard(), today=today
    )


async def test_a_manifest_without_its_data_file_does_not_count(tmp_path: Path) -> None:
    """A crash between the manifest and the data file leaves ids that are fetched again."""
    state = await open_state(tmp_path)
    namer = state.layout.new_namer()
    a, b = namer.next(), namer.next()
    await state.write_batch(a, ["tt0000001", "tt0000002"], b"[{},{}]")
    # the crash: the manifest of b is written, its data file never is
    await state.sink.put(state.layout.manifest_key(b), orjson.dumps(["tt0000003"]))
    resumed = await open_state(tmp_path)
    assert resumed.landed_ids() == {"tt0000001", "tt0000002"}
    assert resumed.orphaned == {b}


async def test_state_is_rebuilt_from_manifests_when_the_checkpoint_is_lost(tmp_path: Path) -> None:
    """Deleting (or damaging) the checkpoint loses nothing: manifests and data files say it all."""
    state = await open_state(tmp_path)
    await state.write_batch(state.layout.new_namer().next(), ["tt0000001"], b"[{}]")
    await state.write_outcomes("o", [ReportEntry("tt0000009", Outcome.NOT_FOUND, "HTTP 404")])
    await state.save()
    checkpoint = tmp_path / state.layout.checkpoint_key
    checkpoint.write_bytes(b"{not json")
    resumed = await open_state(tmp_path)
    assert resumed.resolved_ids() == {"tt0000001", "tt0000009"}


async def test_the_date_folder_is_fixed_when_the_run_starts(tmp_path: Path) -> None:
    """A run resumed on a later day keeps writing under its first day's folder."""
    first = await open_state(tmp_path, today=DAY)
    later = await open_state(tmp_path, today=DAY + dt.timedelta(days=2))
    assert first.layout.date == later.layout.date == "2026/11/30"
    assert later.layout.data_key("x") == "Raw/TMDB/JSON/2026/11/30/x.json"


async def test_a_damaged_run_file_is_a_clear_error(tmp_path: Path) -> None:
    """run.json that is not what we wrote stops the run with a message naming it."""
    state = await open_state(tmp_path)
    (tmp_path / state.layout.meta_key).write_bytes(b"garbage")
    with pytest.raises(SinkError, match="damaged"):
        await open_state(tmp_path)


async def test_the_report_lists_every_reported_id_once_sorted(tmp_path: Path) -> None:
    """save() writes one JSON line per reported id, with imdb_id, outcome and reason."""
    state = await open_state(tmp_path)
    await state.write_outcomes("o2", [ReportEntry("tt0000005", Outcome.FAILED, "HTTP 503")])
    await state.write_outcomes("o1", [ReportEntry("tt0000002", Outcome.NOT_FOUND, "HTTP 404")])
    uri = await state.save()
    assert uri is not None
    lines = [orjson.loads(line) for line in Path(uri).read_bytes().splitlines()]
    assert lines == [
        {"imdb_id": "tt0000002", "outcome": "not_found", "reason": "HTTP 404"},
        {"imdb_id": "tt0000005", "outcome": "failed", "reason": "HTTP 503"},
    ]


async def test_no_report_when_every_id_landed(tmp_path: Path) -> None:
    """With nothing to report, save() returns None and writes no report."""
    state = await open_state(tmp_path)
    await state.write_batch("a", ["tt0000001"], b"[{}]")
    assert await state.save() is None
    assert not (tmp_path / state.layout.report_key).exists()


def test_shards_partition_ids_stably() -> None:
    """Every id is in exactly one of N shards, the same one on every call."""
    ids = [f"tt{n:07d}" for n in range(2000)]
    parts = [set(in_shard(ids, Shard(i, 5))) for i in range(5)]
    assert sum(len(p) for p in parts) == len(ids)
    assert set().union(*parts) == set(ids)
    assert all(len(p) > 300 for p in parts)  # a hash, not a range: roughly even
    # pinned: the same shards on every machine, run and release
    assert [shard_of(i, 5) for i in ids[:12]] == [1, 1, 0, 3, 0, 1, 4, 4, 4, 4, 3, 0]
    assert shard_of("tt0076759", 4) == 3  # fixed: must not change between releases


def test_the_derived_run_id_depends_on_the_selection_and_the_day() -> None:
    """Same ids and day give the same run id; another day or another selection, another."""
    settings = Settings()
    ids = ["tt0000001", "tt0000002"]
    same = derive_run_id(ids, settings, DAY)
    assert same == derive_run_id(list(ids), settings, DAY)
    assert same.startswith("run-20261130-")
    assert same != derive_run_id(ids, settings, DAY + dt.timedelta(days=1))
    assert same != derive_run_id([*ids, "tt0000003"], settings, DAY)
    assert same != derive_run_id(ids, settings.replace(votes_above=5), DAY)


def test_the_derived_run_id_covers_what_changes_the_data_but_not_the_pace() -> None:
    """Language, appended responses, format and batch size make a new run; rate does not."""
    settings = Settings()
    ids = ["tt0000001", "tt0000002"]
    base = derive_run_id(ids, settings, DAY)
    for change in (
        {"language": "pt-BR"},
        {"append_to_response": ("credits",)},
        {"format": "ndjson"},
        {"compress": "gzip"},
        {"batch_size": 50},
    ):
        assert derive_run_id(ids, settings.replace(**change), DAY) != base, change
    for change in ({"rate": 5.0}, {"concurrency": 3}, {"time_budget": 60.0}):
        assert derive_run_id(ids, settings.replace(**change), DAY) == base, change
